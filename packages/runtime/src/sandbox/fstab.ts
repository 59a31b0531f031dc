// A step's mounts as an fstab, so one `mount --all --fstab FILE` makes them all: one process
// instead of one or two per mount (a spawn costs about a millisecond, and a step has a dozen mounts
// with /proc's masks).

/** fstab(5) fields are separated by blanks; libmount reads `\ooo` octal escapes back. */
function field(s: string): string {
  if (s.length === 0) throw new Error("fstab field must not be empty");
  return s.replace(/[\s\\#]/g, (c) => "\\" + c.charCodeAt(0).toString(8).padStart(3, "0"));
}

/** One fstab line: `source target type options 0 0`. */
export function fstabLine(source: string, target: string, type: string, options: string): string {
  return [field(source), field(target), field(type), field(options), "0", "0"].join(" ");
}
