// `mstage init`
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";

export default async function init(_args: string[], _opts: Record<string, unknown>, _g: GlobalOptions): Promise<number> {
  throw new UserError("`mstage init` is not implemented yet");
}
