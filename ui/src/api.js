// The orchestrate API as the page calls it: the bearer token from sessionStorage,
// JSON in and out, errors as ApiError with the server's message.

const TOKEN_KEY = 'kinoit-token';

// The page lives at <orchestrate>/ui/; the API is the folder above it.
export const API_BASE = new URL('../', window.location.href);

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

export function token() {
  return window.sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) window.sessionStorage.setItem(TOKEN_KEY, value);
  else window.sessionStorage.removeItem(TOKEN_KEY);
}

export function apiUrl(path) {
  return new URL(path, API_BASE).href;
}

export function authHeaders(extra = {}) {
  const value = token();
  return value ? { ...extra, Authorization: `Bearer ${value}` } : extra;
}

async function decode(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    return { message: text.slice(0, 200) };
  }
}

export async function api(path, { method = 'GET', json, headers = {} } = {}) {
  const init = { method, headers: authHeaders(headers) };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(apiUrl(path), init);
  const body = await decode(response);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// A same-origin content URL (the /ipfs/ gateway) fetched with the token, as an
// object URL for <img> and downloads.
export async function blobUrl(url) {
  const response = await fetch(url, { headers: sameOrigin(url) ? authHeaders() : {} });
  if (!response.ok) throw new ApiError(response.status, await decode(response));
  return URL.createObjectURL(await response.blob());
}

export function sameOrigin(url) {
  return new URL(url, API_BASE).origin === window.location.origin;
}

// A URL orchestrate built from its public base (KINOIT_PUBLIC_URL, which may be an
// address only the cluster reaches), moved onto the origin this page came from.
export function onThisOrigin(url) {
  const parsed = new URL(url, API_BASE);
  const marker = API_BASE.pathname;
  const at = parsed.pathname.indexOf(marker);
  if (parsed.origin === window.location.origin || at < 0) return parsed.href;
  return new URL(parsed.pathname.slice(at) + parsed.search, window.location.origin).href;
}

export function ipfsUrl(cid, path = '') {
  return apiUrl(`ipfs/${cid}${path ? `/${path}` : ''}`);
}
