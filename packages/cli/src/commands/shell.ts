// `mstage shell`
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";

export default async function shell(_args: string[], _opts: Record<string, unknown>, _g: GlobalOptions): Promise<number> {
  throw new UserError("`mstage shell` is not implemented yet");
}
