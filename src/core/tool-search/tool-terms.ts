/**
 * Words of tool text and queries for the tool-search index: names split on `_`, `-`, `.`, `/` and
 * camelCase, lower-cased, stop words dropped, and a light suffix stemmer so "files"/"file",
 * "creating"/"create", "replies"/"reply" meet. The same functions treat the index and the query.
 * Pure module.
 */

/** Words that say nothing about which tool is meant (English function words and request filler). */
const STOP_WORDS = new Set(
  (
    'a an the and or but if then else of to in on at by for from with without into onto about as is are was were be been being ' +
    "this that these those it its it's i me my we our us you your he she they them their there here what which who whom whose " +
    'when where why how can could should would will shall may might must do does did done have has had not no yes so than too ' +
    'very just also all any each every some such only own same other please want need like let lets get gets got use using used ' +
    'up out over under again once more most much many one via per etc e g eg ie'
  ).split(/\s+/),
);

/** Splits camelCase and acronyms ("getHTTPStatus" → "get HTTP Status") before lower-casing. */
function splitCamel(s: string): string {
  return s.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2');
}

/** Vocabularies are small and words repeat: stemming is cached (bounded; dropped whole when full). */
const STEM_CACHE = new Map<string, string>();
const STEM_CACHE_MAX = 50_000;

/** Conservative suffix stripping; the same on both sides, so it only has to be consistent. */
export function stem(word: string): string {
  const hit = STEM_CACHE.get(word);
  if (hit !== undefined) return hit;
  const out = stemUncached(word);
  if (STEM_CACHE.size >= STEM_CACHE_MAX) STEM_CACHE.clear();
  STEM_CACHE.set(word, out);
  return out;
}

function stemUncached(word: string): string {
  let w = word;
  if (w.length <= 3 || /\d/.test(w)) return w;
  if (w.endsWith('ies') && w.length > 4) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith('sses')) w = w.slice(0, -2);
  else if (w.endsWith('s') && !w.endsWith('ss') && !w.endsWith('us') && !w.endsWith('is')) w = w.slice(0, -1);
  if (w.endsWith('ing') && w.length > 5) w = w.slice(0, -3);
  else if (w.endsWith('ed') && w.length > 4) w = w.slice(0, -2);
  else if (w.endsWith('er') && w.length > 5) w = w.slice(0, -2);
  // "runn" → "run", "creat(e)" → "creat": drop a doubled final consonant and a final e.
  if (/([b-df-hj-np-tv-z])\1$/.test(w) && !w.endsWith('ll') && !w.endsWith('ss')) w = w.slice(0, -1);
  if (w.endsWith('e') && w.length > 3) w = w.slice(0, -1);
  if (w.endsWith('y') && w.length > 3) w = `${w.slice(0, -1)}i`;
  return w;
}

/** Raw words (lower-cased, split), stop words kept: for phrase matching of concept members. */
export function words(text: string): string[] {
  return splitCamel(text)
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((w) => w.length > 0);
}

/** Content terms of a text: split, lower-cased, stop words and one-letter words dropped, stemmed. */
export function terms(text: string): string[] {
  const out: string[] = [];
  for (const w of words(text)) if (w.length > 1 && !STOP_WORDS.has(w)) out.push(stem(w));
  return out;
}

export function isStopWord(word: string): boolean {
  return STOP_WORDS.has(word);
}
