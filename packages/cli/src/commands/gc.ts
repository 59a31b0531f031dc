// `mstage gc`
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";

export default async function gc(_args: string[], _opts: Record<string, unknown>, _g: GlobalOptions): Promise<number> {
  throw new UserError("`mstage gc` is not implemented yet");
}
