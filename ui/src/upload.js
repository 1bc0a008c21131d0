// Upload a file into the store through POST /sources, one piece per request
// (never the whole file in memory, here or on the server); progress per byte sent.

import { ApiError, api, apiUrl, authHeaders } from './api.js';

function putPiece(url, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', url);
    for (const [name, value] of Object.entries(authHeaders({ 'Content-Type': 'application/octet-stream' }))) {
      xhr.setRequestHeader(name, value);
    }
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText || '{}'); } catch { body = { message: xhr.responseText }; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body));
    };
    xhr.onerror = () => reject(new ApiError(0, { message: 'the upload was interrupted (network error)' }));
    xhr.send(blob);
  });
}

// Resolves to the stored file's CID; onProgress(sentBytes, totalBytes).
export async function uploadFile(file, onProgress) {
  const session = await api('sources', { method: 'POST', json: { size: file.size, name: file.name } });
  const url = new URL(`sources/${session.upload_id}`, apiUrl('')).href;
  let offset = 0;
  let last = null;
  while (offset < file.size) {
    const end = Math.min(offset + session.chunk_bytes, file.size);
    const start = offset;
    last = await putPiece(`${url}?offset=${start}`, file.slice(start, end), (sent) => onProgress(start + sent, file.size));
    offset = end;
    onProgress(offset, file.size);
  }
  return last.cid;
}
