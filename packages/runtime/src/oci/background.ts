// Compression started ahead of export (a tarball() base's layer, while the build runs) takes only
// the CPU time the build leaves: it runs at the lowest priority until something waits for it.
import { readdirSync } from "node:fs";
import { setPriority } from "node:os";

/** The nice value of background compression: the lowest priority. */
export const BACKGROUND_NICE = 19;

export class Background {
  private hurried = false;
  private readonly raise: Array<() => void> = [];

  /** True until `hurry()`: work should go to low-priority threads. */
  get low(): boolean {
    return !this.hurried;
  }

  /** Runs `fn` once the job is hurried (at once if it already is). */
  onHurry(fn: () => void): void {
    if (this.hurried) fn();
    else this.raise.push(fn);
  }

  /** Something waits for the job: what is still to do runs at normal priority. */
  hurry(): void {
    if (this.hurried) return;
    this.hurried = true;
    for (const fn of this.raise.splice(0)) fn();
  }
}

/**
 * Sets the nice value of every thread of process `pid` (Linux's nice is per thread). Raising a
 * priority again needs privileges: an unprivileged caller's job keeps its low priority, which only
 * matters while the machine is busy.
 */
export function reniceProcess(pid: number, nice: number): void {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    tids = [String(pid)];
  }
  for (const tid of tids) {
    try {
      setPriority(Number(tid), nice);
    } catch {
      // Gone, or not allowed (raising without privileges): it keeps the priority it has.
    }
  }
}
