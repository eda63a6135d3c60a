// Consent (docs/PROTOCOL.md, "Consent in groups"): the "who may add me to
// a group" setting in a small dialog, and Block / Unblock in a direct
// conversation's header. Native <dialog>, <select> and <button>: keyboard
// accessible as they are.

/** The users the person blocks, by ID, as the server last said. */
export class Blocks {
  constructor(api) {
    this.api = api;
    this.ids = new Set();
  }

  async load() {
    const r = await this.api.call('GET', '/blocks');
    this.ids = new Set((r.users || []).map((u) => u.id));
  }

  has(id) {
    return this.ids.has(id);
  }

  async set(user, on) {
    await this.api.call(on ? 'PUT' : 'DELETE', `/blocks/${encodeURIComponent(user.username)}`);
    if (on) this.ids.add(user.id);
    else this.ids.delete(user.id);
  }
}

/**
 * Wires the settings dialog: els.button opens it, els.select is the
 * policy (saved when changed), els.status says what happened.
 */
export function settingsDialog({ els, api, describe }) {
  els.button.addEventListener('click', async () => {
    els.status.textContent = '';
    els.dialog.showModal();
    els.select.focus();
    try {
      const s = await api.call('GET', '/me/settings');
      els.select.value = s.add_policy;
    } catch (e) {
      els.status.textContent = describe(e);
    }
  });
  els.select.addEventListener('change', async () => {
    els.status.textContent = 'Saving…';
    try {
      const s = await api.call('PUT', '/me/settings', { add_policy: els.select.value });
      els.select.value = s.add_policy;
      els.status.textContent = 'Saved.';
    } catch (e) {
      els.status.textContent = describe(e);
    }
  });
}
