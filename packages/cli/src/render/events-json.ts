// The `--json` event stream of `up` and `watch`: one JSON object a line on stdout, the builder's
// events as they are plus what the commands add (plan, result, errors). One writer for both, so a
// script reading `up --json` reads `watch --json` too. The event types are listed in the README.
import type { Plan } from "@mstage/core";
import { summary as planSummary } from "./plan.ts";

export type PlanEvent = {
  type: "plan";
  summary: string;
  stages: Array<{ name: string; status: string; reasons: string[] }>;
};

/** Any event of the stream: a type and its data. */
export type JsonEvent = { type: string; [key: string]: unknown };

export function planEvent(plan: Plan): PlanEvent {
  return {
    type: "plan",
    summary: planSummary(plan),
    stages: plan.entries.map((e) => ({ name: e.stage.name, status: e.status, reasons: e.reasons })),
  };
}

/** One event as a line of JSON: errors become their messages, and every event gets its time. */
export function jsonEventLine(e: JsonEvent): string {
  const data = "error" in e ? { ...e, error: e.error instanceof Error ? e.error.message : String(e.error) } : e;
  return JSON.stringify({ ...data, time: new Date().toISOString() }) + "\n";
}
