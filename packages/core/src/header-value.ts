const SENTINEL_PREFIX = '=?base64?';
const SENTINEL_SUFFIX = '?=';

/**
 * A value as an MCP request header carries it (`Mcp-Name`, `Mcp-Param-*`, 2026-07-28): text that is
 * a plain visible-ASCII field value as it is; anything else (empty, padded with spaces, control or
 * non-ASCII characters, or looking like the sentinel itself) as `=?base64?<utf-8 base64>?=`.
 */
export function encodeMcpHeaderValue(text: string): string {
  return needsBase64(text)
    ? `${SENTINEL_PREFIX}${Buffer.from(text, 'utf8').toString('base64')}${SENTINEL_SUFFIX}`
    : text;
}

function needsBase64(text: string): boolean {
  if (text === '' || text !== text.trim()) return true;
  if (text.startsWith(SENTINEL_PREFIX) && text.endsWith(SENTINEL_SUFFIX)) return true;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code !== 9 && (code < 32 || code > 126)) return true;
  }
  return false;
}
