// `mstage doctor`
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";

export default async function doctor(_args: string[], _opts: Record<string, unknown>, _g: GlobalOptions): Promise<number> {
  throw new UserError("`mstage doctor` is not implemented yet");
}
