// JSON calls and the live event stream, with the optional Bearer token the server may require.
const TOKEN_KEY = "finpulse.token";
let tokenPrompt = null;

function headers(extra) {
  const h = { ...extra };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

function askToken() {
  // One dialog at a time, however many calls were refused together.
  tokenPrompt ??= new Promise((resolve) => {
    const dialog = document.getElementById("token-dialog");
    const form = document.getElementById("token-form");
    form.onsubmit = () => {
      sessionStorage.setItem(TOKEN_KEY, form.token.value);
      tokenPrompt = null;
      resolve();
    };
    dialog.showModal();
  });
  return tokenPrompt;
}

export class ApiError extends Error {}

export async function api(path, { method = "GET", body } = {}) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const resp = await fetch(path, {
      method,
      headers: headers(body ? { "Content-Type": "application/json" } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    if (resp.status === 401) {
      await askToken();
      continue;
    }
    const data = resp.status === 204 ? null : await resp.json();
    if (!resp.ok) throw new ApiError(data?.error || `${resp.status} ${resp.statusText}`);
    return data;
  }
  throw new ApiError("not authorised");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Server-sent events read with fetch, so the token travels in a header, never in a URL. */
export async function listen(path, onEvent, onState) {
  for (;;) {
    try {
      const resp = await fetch(path, { headers: headers({ Accept: "text/event-stream" }) });
      if (resp.status === 401) {
        await askToken();
        continue;
      }
      if (!resp.ok || !resp.body) throw new ApiError(`event stream: ${resp.status}`);
      onState(true);
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let cut;
        while ((cut = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let event = "message";
          const data = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event:")) event = line.slice(6).trim();
            else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
          }
          if (data.length) onEvent(event, JSON.parse(data.join("\n")));
        }
      }
    } catch (err) {
      if (!(err instanceof TypeError || err instanceof ApiError)) throw err;
    }
    onState(false);
    await sleep(2000);
  }
}
