"""The pages themselves: HTML, script and style, kept as strings so they ship with the package without package-data.

One skeleton (`page_html`), one script core (`page_script`: name and resume, the token, the error box, the
buttons, the keys, the next-item loop) and one style sheet serve both pages; each page adds its task markup, its
choices and keys, and its endpoints. This module holds the pairwise page; label_app.py the labelling page.

The pairwise script never learns which variant is on which side: it shows the two images the server names `left` and
`right` for this annotator and posts back `left`, `right` or `tie`.
Keys: Left arrow or 1 = left is better, Down arrow or 2 = can't decide, Right arrow or 3 = right is better.
"""
from __future__ import annotations

import html
import json

# Paper appendix A.3, in its order.
CRITERIA = (
    "The correctness of semantic alignment",
    "The correctness of object appearance and structure",
    "The richness of details",
    "The aesthetic appeal of the image",
    "Your preference for upvoting or sharing it on social networks",
)

_CRITERIA_ITEMS = "\n".join(f"        <li>{html.escape(item)}</li>" for item in CRITERIA)


def page_html(*, title: str, heading: str, script: str, styles: tuple[str, ...], task: str, finished: str,
              preface: str = "") -> str:
    """A page: name form and progress bar, error box, `preface` (e.g. the criteria), intro, `task` (the markup of
    the item shown, ending with the `.choices` buttons, each with a `data-choice`) and the `finished` message."""
    links = "\n".join(f'  <link rel="stylesheet" href="{href}">' for href in styles)
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title}</title>
{links}
  <script src="{script}" defer></script>
</head>
<body data-state="idle">
  <header>
    <h1>{heading}</h1>
    <form id="who" autocomplete="on">
      <label for="annotator">Your name</label>
      <input id="annotator" name="annotator" required maxlength="64"
             pattern="[A-Za-z0-9][A-Za-z0-9 _.@\\-]{{0,63}}" placeholder="e.g. alice">
      <button type="submit" id="start">Start / resume</button>
    </form>
    <div class="progress">
      <progress id="progress" value="0" max="1"></progress>
      <span id="progress-text" aria-live="polite"></span>
    </div>
  </header>
  <main>
    <p id="error" role="alert" hidden></p>
{preface}    <section id="intro">
      <p>Enter your name to start. You can stop at any time; with the same name you resume where you stopped.</p>
    </section>
    <section id="task" hidden>
{task}    </section>
    <section id="finished" hidden>
      <h2>{finished}</h2>
    </section>
  </main>
</body>
</html>
"""


# The script core of both pages; `humanEvalPage(mode, show)` runs it. `mode` (see `page_script`) names what differs;
# show(item, page) fills the task with the item and returns a promise that settles when its images have loaded.
_CORE_JS = r"""
  function humanEvalPage(mode, show) {
    const token = new URLSearchParams(window.location.search).get("token") || "";
    const state = { annotator: null, item: null, busy: false };
    const byId = (id) => document.getElementById(id);
    const buttons = () => document.querySelectorAll(".choices button");

    function setState(name) { document.body.dataset.state = name; }

    function showError(message) {
      const box = byId("error");
      box.textContent = message;
      box.hidden = !message;
    }

    async function api(path, options) {
      const opts = Object.assign({}, options || {});
      opts.headers = Object.assign({}, opts.headers || {});
      if (token) opts.headers["X-Token"] = token;
      const response = await fetch(path, opts);
      let body = null;
      try { body = await response.json(); } catch (err) { body = null; }
      if (!response.ok) {
        const error = new Error((body && body.error) || ("HTTP " + response.status));
        error.status = response.status;
        throw error;
      }
      return body;
    }

    // Images are fetched by <img>, which cannot send a header: the token goes in the query.
    function withToken(path, params) {
      const query = new URLSearchParams(params);
      if (token) query.set("token", token);
      return path + "?" + query.toString();
    }

    function loadImage(id, url, message) {
      return new Promise((resolve, reject) => {
        const img = byId(id);
        img.onload = () => resolve();
        img.onerror = () => reject(new Error(message));
        img.src = url;
      });
    }

    function showProgress(progress) {
      const bar = byId("progress");
      bar.max = Math.max(progress.total, 1);
      bar.value = progress.done;
      byId("progress-text").textContent = progress.done + " / " + progress.total + " " + mode.progressText;
    }

    function enable(on) { buttons().forEach((button) => { button.disabled = !on; }); }

    async function loadNext() {
      state.busy = true;
      enable(false);
      setState("loading");
      try {
        const data = await api(mode.nextPath + "?" + new URLSearchParams({ annotator: state.annotator }).toString());
        showProgress(data.progress);
        byId("intro").hidden = true;
        if (data.finished) {
          state.item = null;
          byId("task").hidden = true;
          byId("finished").hidden = false;
          document.body.dataset[mode.idAttribute] = "";
          setState("finished");
          return;
        }
        const item = data[mode.field];
        state.item = item;
        byId("finished").hidden = true;
        byId("task").hidden = false;
        byId("prompt").textContent = mode.numberWord + " " + item.number + ": \u201c" + item.prompt + "\u201d";
        await show(item, { byId: byId, withToken: withToken, loadImage: loadImage, annotator: state.annotator });
        document.body.dataset[mode.idAttribute] = item[mode.idField];
        enable(true);
        setState("ready");
      } catch (err) {
        showError(err.message);
        setState("error");
      } finally {
        state.busy = false;
      }
    }

    async function answer(choice) {
      if (!state.item || state.busy) return;
      state.busy = true;
      enable(false);
      setState(mode.savingState);
      try {
        await api(mode.postPath, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            annotator: state.annotator, [mode.idField]: state.item[mode.idField], [mode.choiceField]: choice,
          }),
        });
        showError("");
      } catch (err) {
        // A 409 means this item was already answered (e.g. in another tab): just move on.
        if (err.status !== 409) { showError(err.message); state.busy = false; enable(true); setState("ready"); return; }
      }
      state.busy = false;
      await loadNext();
    }

    function start(name) {
      state.annotator = name;
      try { window.localStorage.setItem("noise-exp-annotator", name); } catch (err) { /* private mode */ }
      showError("");
      loadNext();
    }

    document.addEventListener("DOMContentLoaded", () => {
      const input = byId("annotator");
      byId("who").addEventListener("submit", (event) => {
        event.preventDefault();
        const name = input.value.trim();
        if (!input.checkValidity() || !name) { showError("Enter a name: letters, digits, space, _ . @ -"); return; }
        input.blur();
        start(name);
      });
      buttons().forEach((button) => button.addEventListener("click", () => answer(button.dataset.choice)));
      document.addEventListener("keydown", (event) => {
        if (event.repeat || event.altKey || event.ctrlKey || event.metaKey) return;
        if (event.target instanceof HTMLInputElement) return;
        const choice = mode.keys[event.key];
        if (choice) { event.preventDefault(); answer(choice); }
      });
      let saved = "";
      try { saved = window.localStorage.getItem("noise-exp-annotator") || ""; } catch (err) { saved = ""; }
      if (saved) {
        input.value = saved;
        if (mode.resumeOnLoad) start(saved);
      }
    });
  }
"""


def page_script(mode: dict, show: str) -> str:
    """A page's script: the shared core run with `mode` and `show` (a JavaScript function, see `_CORE_JS`).

    `mode`: nextPath and postPath (the endpoints); field (the item's name in /next's answer); idField (the item's
    id, posted back with the choice); choiceField (the choice's name in the posted JSON); idAttribute (the body's
    data attribute holding the shown item's id, which the tests wait on); numberWord ("Prompt" in "Prompt 3: ...");
    progressText; savingState (the body's data-state while posting); keys (key -> choice); resumeOnLoad (a
    remembered name starts at once, else it only fills the name field).
    """
    run = f"humanEvalPage({json.dumps(mode)}, {show.strip()});"
    return f'\n"use strict";\n(function () {{{_CORE_JS}\n  {run}\n}})();\n'


INDEX_HTML = page_html(
    title="Image Selection", heading="Image Selection", script="/app.js", styles=("/style.css",),
    preface=f"""    <section id="criteria">
      <h3>Select the better image of the pair, following these criteria</h3>
      <ol>
{_CRITERIA_ITEMS}
      </ol>
    </section>
""",
    task="""      <h2 id="prompt"></h2>
      <div class="pair">
        <figure><img id="left-image" alt="left image"><figcaption>Left</figcaption></figure>
        <figure><img id="right-image" alt="right image"><figcaption>Right</figcaption></figure>
      </div>
      <div class="choices">
        <button type="button" id="choose-left" data-choice="left" disabled>Left is better <kbd>&larr;</kbd> <kbd>1</kbd></button>
        <button type="button" id="choose-tie" data-choice="tie" disabled>Can't decide <kbd>&darr;</kbd> <kbd>2</kbd></button>
        <button type="button" id="choose-right" data-choice="right" disabled>Right is better <kbd>&rarr;</kbd> <kbd>3</kbd></button>
      </div>
""",
    finished="All pairs judged. Thank you!",
)

APP_JS = page_script(
    {"nextPath": "/api/next", "postPath": "/api/votes", "field": "pair", "idField": "pair_id", "choiceField": "choice",
     "idAttribute": "pairId", "numberWord": "Prompt", "progressText": "pairs judged", "savingState": "voting",
     "keys": {"ArrowLeft": "left", "1": "left", "ArrowDown": "tie", "2": "tie", "ArrowRight": "right", "3": "right"},
     "resumeOnLoad": True},
    r"""
  (pair, page) => {
    const url = (side) => page.withToken("/api/image",
                                         { pair_id: pair.pair_id, side: side, annotator: page.annotator });
    const message = "could not load an image; reload the page";
    return Promise.all([page.loadImage("left-image", url("left"), message),
                        page.loadImage("right-image", url("right"), message)]);
  }
""")

STYLE_CSS = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1400px; padding: 0 1rem 2rem; color: #222; }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 1rem 2rem; border-bottom: 1px solid #ddd; }
header h1 { margin: 0.6rem 0; font-size: 1.5rem; }
#who { display: flex; gap: 0.5rem; align-items: center; }
#who input { padding: 0.3rem; }
.progress { display: flex; gap: 0.5rem; align-items: center; margin-left: auto; }
#error { background: #fde2e2; color: #8a1111; padding: 0.6rem; border-radius: 4px; }
#prompt { font-size: 1.2rem; font-weight: 600; margin: 1rem 0; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.pair figure { margin: 0; text-align: center; }
.pair img { width: 100%; max-height: 62vh; object-fit: contain; background: #f4f4f4; image-rendering: auto; }
.choices { display: flex; justify-content: space-between; gap: 1rem; margin: 1rem 0; }
.choices button { flex: 1; padding: 0.8rem; font-size: 1.05rem; cursor: pointer; }
.choices button:disabled { cursor: wait; opacity: 0.6; }
kbd { border: 1px solid #aaa; border-radius: 3px; padding: 0 0.3rem; font-size: 0.85em; background: #fafafa; }
#criteria { color: #444; font-size: 0.9rem; border-bottom: 1px solid #ddd; }
#criteria h3 { font-size: 0.95rem; margin: 0.6rem 0 0.3rem; }
#criteria ol { margin: 0 0 0.6rem; padding-left: 1.4rem; columns: 2 24rem; }
"""
