// `mstage watch`
import { UserError } from "@mstage/core";
import type { GlobalOptions } from "../options.ts";

export default async function watch(_args: string[], _opts: Record<string, unknown>, _g: GlobalOptions): Promise<number> {
  throw new UserError("`mstage watch` is not implemented yet");
}
