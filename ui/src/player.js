// The player: hls.js (from the npm lockfile, served beside the page) on the job's
// preview playlist while it runs, on the finished HLS after; a browser that plays
// HLS itself (Safari) gets the URL directly.

import Hls from './hls.mjs';
import { authHeaders, sameOrigin } from './api.js';

export class Player {
  constructor(video, status) {
    this.video = video;
    this.status = status;
    this.url = null;
    this.hls = null;
    this.live = false;
  }

  // Play `url` (null: nothing to play yet); `bearer`: send the token with each request.
  // A preview (`live`) starts at the beginning; the finished video takes over where
  // the preview was, so switching when the job completes does not jump.
  load(url, { bearer = false, live = false } = {}) {
    if (url === this.url) return;
    const carried = this.url && this.video.currentTime > 0 ? this.video.currentTime : -1;
    const wasPlaying = this.url !== null && !this.video.paused;
    this.destroy();
    this.url = url;
    this.live = live;
    if (!url) return;
    this.status.textContent = live ? 'Preview: the segments encoded and verified so far.' : 'The finished video.';
    if (Hls.isSupported()) {
      const hls = new Hls({
        enableWorker: false,
        startPosition: live ? 0 : carried,
        xhrSetup: (xhr, requestUrl) => {
          if (bearer && sameOrigin(requestUrl)) {
            for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
          }
        },
      });
      hls.on(Hls.Events.ERROR, (_event, data) => {
        if (!data.fatal) return;
        this.status.textContent = `Playback stopped: ${data.details}`;
        // a preview is still growing: the next poll may load it again
        if (live) this.destroy();
      });
      if (wasPlaying) hls.on(Hls.Events.MANIFEST_PARSED, () => this.video.play().catch(() => {}));
      hls.loadSource(url);
      hls.attachMedia(this.video);
      this.hls = hls;
    } else if (this.video.canPlayType('application/vnd.apple.mpegurl')) {
      this.video.src = url;
    } else {
      this.status.textContent = 'This browser cannot play HLS.';
    }
  }

  destroy() {
    if (this.hls) this.hls.destroy();
    this.hls = null;
    this.url = null;
  }
}
