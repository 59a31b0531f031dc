// `mstage ls`
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";

export default async function ls(_args: string[], _opts: Record<string, unknown>, _g: GlobalOptions): Promise<number> {
  throw new UserError("`mstage ls` is not implemented yet");
}
