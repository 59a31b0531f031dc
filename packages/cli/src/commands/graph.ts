// `mstage graph`
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";

export default async function graph(_args: string[], _opts: Record<string, unknown>, _g: GlobalOptions): Promise<number> {
  throw new UserError("`mstage graph` is not implemented yet");
}
