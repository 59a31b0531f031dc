// `mstage plan`
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";

export default async function plan(_args: string[], _opts: Record<string, unknown>, _g: GlobalOptions): Promise<number> {
  throw new UserError("`mstage plan` is not implemented yet");
}
