// `mstage up`
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";

export default async function up(_args: string[], _opts: Record<string, unknown>, _g: GlobalOptions): Promise<number> {
  throw new UserError("`mstage up` is not implemented yet");
}
