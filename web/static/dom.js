// Tiny DOM helpers. Text always goes in through textContent (text nodes),
// never through markup, so user data can never become HTML.

/**
 * Creates an element. attrs: `class`, `text` (textContent), `dataset`,
 * `on<event>` handlers, booleans for boolean attributes, other values as
 * attributes. Children: nodes or strings (as text nodes); null is skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/**
 * Keeps parent's children equal to items, in order, reusing the element of
 * a key whose signature did not change, so that a re-render neither loses
 * focus or selection nor rebuilds hundreds of messages.
 * items: [{key, sig, build: () => Element}]; cache: Map kept by the caller.
 */
export function reconcile(parent, items, cache) {
  const seen = new Set();
  let cursor = parent.firstChild;
  for (const it of items) {
    seen.add(it.key);
    let c = cache.get(it.key);
    if (!c || c.sig !== it.sig) {
      const el = it.build();
      if (c) {
        if (c.el === cursor) cursor = cursor.nextSibling;
        c.el.remove();
      }
      c = { el, sig: it.sig };
      cache.set(it.key, c);
    }
    if (c.el === cursor) {
      cursor = cursor.nextSibling;
    } else {
      parent.insertBefore(c.el, cursor);
    }
  }
  for (const [k, c] of cache) {
    if (!seen.has(k)) {
      c.el.remove();
      cache.delete(k);
    }
  }
}

export function $(sel, root = document) {
  return root.querySelector(sel);
}
