/**
 * DNS-rebinding and cross-origin guards. The gateway binds loopback by default; a page on another
 * site that resolves its own name to 127.0.0.1 is stopped by the Host check, and a browser request
 * from a foreign origin by the Origin check. Requests without an Origin (non-browser agents) pass.
 */

const LOOPBACK_HOSTNAMES = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** The hostname part of a Host header (`[::1]:8080` → `[::1]`, `localhost:80` → `localhost`). */
function hostnameOf(host: string): string {
  const trimmed = host.trim().toLowerCase();
  if (trimmed.startsWith('[')) {
    const end = trimmed.indexOf(']');
    // Only `[addr]` or `[addr]:port`; anything else after the bracket is not a loopback host.
    if (end === -1 || !/^(:\d+)?$/.test(trimmed.slice(end + 1))) return trimmed;
    return trimmed.slice(0, end + 1);
  }
  const colon = trimmed.lastIndexOf(':');
  return colon === -1 ? trimmed : trimmed.slice(0, colon);
}

export function isAllowedHost(host: string | undefined, allowedHosts: readonly string[]): boolean {
  if (host === undefined || host === '') return false;
  const hostname = hostnameOf(host);
  if (LOOPBACK_HOSTNAMES.has(hostname)) return true;
  return allowedHosts.some((allowed) => {
    const candidate = allowed.toLowerCase();
    return candidate === host.toLowerCase() || candidate === hostname;
  });
}

export function isAllowedOrigin(origin: string, allowedOrigins: readonly string[]): boolean {
  if (allowedOrigins.includes(origin)) return true;
  try {
    const url = new URL(origin);
    return (url.protocol === 'http:' || url.protocol === 'https:') && LOOPBACK_HOSTNAMES.has(url.hostname);
  } catch {
    return false;
  }
}
