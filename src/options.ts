// Python's optional arguments in JavaScript (API rule 3): every call takes them in
// Python's positional order, or one options object with the same names in camelCase in
// place of all of them, or of those after the ones given positionally:
// `p.join(1)`, `p.join({ timeout: 1 })`; `pool.mapAsync(f, xs, 4, cb)`,
// `pool.mapAsync(f, xs, { chunksize: 4, callback: cb })`, `pool.mapAsync(f, xs, 4, { callback: cb })`.
/** An object literal (not an array, a Buffer, a Map, a library object...). */
export function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== 'object') return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

/**
 * The optional arguments of `call` by name. `given` holds them as passed (the arguments
 * after the required ones); `names` are their names in Python's order. The last argument
 * given is an options object when it is an object literal in a place that does not take
 * object literals (`literalSlots`), or one whose keys are all option names. Names in
 * `optionOnly` (extensions to Python's signature) are taken only from the options object.
 * An unknown option is a TypeError at the call.
 */
export function optionalArgs<T extends object>(
  call: string,
  names: readonly (keyof T & string)[],
  given: ArrayLike<unknown>,
  literalSlots: readonly (keyof T & string)[] = [],
  optionOnly: readonly (keyof T & string)[] = [],
): Partial<T> {
  let n = given.length;
  while (n > 0 && given[n - 1] === undefined) n--;
  const out: Record<string, unknown> = {};
  if (n === 0) return out as Partial<T>;
  const last = given[n - 1];
  let options: Record<string, unknown> | null = null;
  // The options object may also follow all the positional ones (for options beyond Python's).
  if (isPlainObject(last) && n - 1 <= names.length) {
    const slot = names[n - 1] as (keyof T & string) | undefined;
    const keys = Object.keys(last);
    const allNames = keys.length > 0 && keys.every((k) => (names as readonly string[]).includes(k) || (optionOnly as readonly string[]).includes(k));
    if (slot === undefined || !literalSlots.includes(slot) || allNames) options = last;
  }
  const positional = options ? n - 1 : n;
  if (positional > names.length) {
    throw new TypeError(`${call}() takes at most ${names.length} optional argument${names.length === 1 ? '' : 's'} (${positional} given)`);
  }
  for (let i = 0; i < positional; i++) out[names[i]] = given[i];
  if (options) {
    for (const [k, v] of Object.entries(options)) {
      const at = (names as readonly string[]).indexOf(k);
      if (at < 0 && !(optionOnly as readonly string[]).includes(k)) {
        throw new TypeError(`${call}() got an unexpected option '${k}' (its options are ${[...names, ...optionOnly].map((x) => `'${x}'`).join(', ')})`);
      }
      if (at >= 0 && at < positional) throw new TypeError(`${call}() got '${k}' both as an argument and as an option`);
      out[k] = v;
    }
  }
  return out as Partial<T>;
}

/** A call's one optional argument, given as itself or as `{ name: value }`. */
export function optionalArg<V>(call: string, name: string, given: V | object | undefined): V | undefined {
  if (!isPlainObject(given)) return given as V | undefined;
  return (optionalArgs<Record<string, unknown>>(call, [name], [given]) as Record<string, V | undefined>)[name];
}
