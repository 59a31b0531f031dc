// Docker's word rules for instruction arguments (BuildKit's shell/lex.go): quotes, the escape
// character and variable expansion (`$V`, `${V}`, `${V:-default}`, `${V-default}`, `${V:+alt}`,
// `${V+alt}`, `${V:?message}`). RUN, CMD and ENTRYPOINT are left to the shell, as Docker does.

/** A variable's value; `undefined` when it is not set. */
export type Lookup = (name: string) => string | undefined;

export interface LexOptions {
  /** The escape character (`# escape=` directive); default `\`. */
  escape?: string;
  /** Heredoc bodies: quotes stay as they are, only `$` expands. */
  raw?: boolean;
}

export class WordError extends Error {}

/** Splits `text` on unquoted whitespace and expands each word (quotes removed). Empty words are kept only when quoted. */
export function expandWords(text: string, lookup: Lookup, o: LexOptions = {}): string[] {
  return new Lexer(text, lookup, o).words();
}

/** Expands `text` as one word: whitespace is kept, quotes and escapes are removed. */
export function expandWord(text: string, lookup: Lookup, o: LexOptions = {}): string {
  return new Lexer(text, lookup, o).word(true);
}

/** Splits `text` on unquoted whitespace without expanding anything (for `KEY=value` pairs). */
export function rawWords(text: string, escape = "\\"): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: string | undefined;
  let has = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      cur += c;
      if (c === escape && quote === '"' && i + 1 < text.length) cur += text[++i];
      else if (c === quote) quote = undefined;
      continue;
    }
    if (/\s/.test(c)) {
      if (has) out.push(cur);
      cur = "";
      has = false;
      continue;
    }
    has = true;
    cur += c;
    if (c === escape && i + 1 < text.length) cur += text[++i];
    else if (c === '"' || c === "'") quote = c;
  }
  if (quote) throw new WordError(`unterminated ${quote === '"' ? "double" : "single"} quote`);
  if (has) out.push(cur);
  return out;
}

class Lexer {
  private i = 0;
  private readonly esc: string;
  constructor(
    private readonly s: string,
    private readonly lookup: Lookup,
    private readonly o: LexOptions,
  ) {
    this.esc = o.escape ?? "\\";
  }

  words(): string[] {
    const out: string[] = [];
    for (;;) {
      while (this.i < this.s.length && /\s/.test(this.s[this.i]!)) this.i++;
      if (this.i >= this.s.length) return out;
      const start = this.i;
      const w = this.word(false);
      // A word that expanded to nothing is dropped unless it was quoted (`""` is an empty argument).
      if (w !== "" || /["']/.test(this.s.slice(start, this.i))) out.push(w);
    }
  }

  /** One word: up to unquoted whitespace (or the end, with `whole`). */
  word(whole: boolean): string {
    let out = "";
    while (this.i < this.s.length) {
      const c = this.s[this.i]!;
      if (!whole && /\s/.test(c)) break;
      if (!this.o.raw && c === "'") out += this.single();
      else if (!this.o.raw && c === '"') out += this.double();
      else if (c === "$") out += this.dollar();
      else if (c === this.esc && this.i + 1 < this.s.length) {
        const next = this.s[this.i + 1]!;
        if (this.o.raw && next !== "$") out += c + next;
        else out += next;
        this.i += 2;
      } else {
        out += c;
        this.i++;
      }
    }
    return out;
  }

  private single(): string {
    const end = this.s.indexOf("'", this.i + 1);
    if (end < 0) throw new WordError("unterminated single quote");
    const v = this.s.slice(this.i + 1, end);
    this.i = end + 1;
    return v;
  }

  private double(): string {
    let out = "";
    this.i++;
    while (this.i < this.s.length) {
      const c = this.s[this.i]!;
      if (c === '"') {
        this.i++;
        return out;
      }
      if (c === "$") out += this.dollar();
      else if (c === this.esc && this.i + 1 < this.s.length) {
        const next = this.s[this.i + 1]!;
        out += next === '"' || next === "$" || next === this.esc ? next : c + next;
        this.i += 2;
      } else {
        out += c;
        this.i++;
      }
    }
    throw new WordError("unterminated double quote");
  }

  private dollar(): string {
    this.i++;
    const c = this.s[this.i];
    if (c === "{") return this.braced();
    const m = /^[A-Za-z_][A-Za-z0-9_]*|^[0-9]/.exec(this.s.slice(this.i));
    if (!m) return "$";
    this.i += m[0].length;
    return this.lookup(m[0]) ?? "";
  }

  private braced(): string {
    this.i++;
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.s.slice(this.i));
    if (!m) throw new WordError(`bad substitution at "\${${this.s.slice(this.i, this.i + 10)}"`);
    const name = m[0];
    this.i += name.length;
    const value = this.lookup(name);
    if (this.s[this.i] === "}") {
      this.i++;
      return value ?? "";
    }
    const op = /^(:?[-+?])/.exec(this.s.slice(this.i));
    if (!op) throw new WordError(`unsupported modifier in \${${name}${this.s.slice(this.i, this.i + 5)}…} (supported: :- - :+ + :? ?)`);
    this.i += op[1]!.length;
    const word = this.until("}");
    const colon = op[1]!.startsWith(":");
    const set = colon ? value !== undefined && value !== "" : value !== undefined;
    switch (op[1]!.slice(-1)) {
      case "-":
        return set ? value! : word;
      case "+":
        return set ? word : "";
      default:
        if (!set) throw new WordError(`${name}: ${word || "is not set"}`);
        return value!;
    }
  }

  /** The expanded word of a `${V:-word}` modifier, up to the closing brace. */
  private until(close: string): string {
    let out = "";
    while (this.i < this.s.length) {
      const c = this.s[this.i]!;
      if (c === close) {
        this.i++;
        return out;
      }
      if (!this.o.raw && c === "'") out += this.single();
      else if (!this.o.raw && c === '"') out += this.double();
      else if (c === "$") out += this.dollar();
      else if (c === this.esc && this.i + 1 < this.s.length) {
        out += this.s[this.i + 1];
        this.i += 2;
      } else {
        out += c;
        this.i++;
      }
    }
    throw new WordError(`missing "}" in a \${…} substitution`);
  }
}
