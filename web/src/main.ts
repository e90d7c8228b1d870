/**
 * The console's entry point: a tab per page (Denoise, Restore, Detect, Transport, Models), the page in the URL
 * hash so it can be linked and survives a reload, arrow keys between tabs (the WAI-ARIA tabs pattern), and the
 * optional API key, kept for this browser session only; a status strip from /readyz under the tabs.
 */
import { apiKey, setApiKey } from './api.js';
import { h } from './dom.js';
import { denoisePage } from './pages/denoise.js';
import { detectPage } from './pages/detect.js';
import { modelsPage } from './pages/models.js';
import { restorePage } from './pages/restore.js';
import { transportPage } from './pages/transport.js';
import { startStatusStrip } from './status.js';

const PAGES: [string, string, () => HTMLElement][] = [
  ['denoise', 'Denoise', denoisePage],
  ['restore', 'Restore', restorePage],
  ['detect', 'Detect', detectPage],
  ['transport', 'Transport', transportPage],
  ['models', 'Models', modelsPage],
];

function start() {
  const main = document.getElementById('main');
  const nav = document.getElementById('tabs');
  const keyInput = document.getElementById('api-key') as HTMLInputElement | null;
  if (!main || !nav) return;
  const strip = document.getElementById('status-strip');
  if (strip) startStatusStrip(strip);
  if (keyInput) {
    keyInput.value = apiKey();
    keyInput.addEventListener('change', () => setApiKey(keyInput.value.trim()));
  }

  const sections = new Map<string, HTMLElement & { onShow?: () => void }>();
  const tabs: HTMLButtonElement[] = [];
  for (const [id, label, make] of PAGES) {
    const section = make();
    section.setAttribute('role', 'tabpanel');
    section.setAttribute('aria-labelledby', `tab-${id}`);
    section.tabIndex = 0;
    sections.set(id, section);
    main.append(section);
    const tab = h(
      'button',
      { type: 'button', role: 'tab', id: `tab-${id}`, 'aria-controls': `page-${id}` },
      label,
    );
    tab.addEventListener('click', () => {
      location.hash = id;
    });
    tabs.push(tab);
    nav.append(tab);
  }
  nav.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(document.activeElement as HTMLButtonElement);
    if (i < 0) return;
    let next = -1;
    if (e.key === 'ArrowRight') next = (i + 1) % tabs.length;
    if (e.key === 'ArrowLeft') next = (i - 1 + tabs.length) % tabs.length;
    if (e.key === 'Home') next = 0;
    if (e.key === 'End') next = tabs.length - 1;
    if (next >= 0) {
      e.preventDefault();
      tabs[next].focus();
      tabs[next].click();
    }
  });

  const show = () => {
    const wanted = location.hash.slice(1);
    const id = sections.has(wanted) ? wanted : PAGES[0][0];
    for (const [pid, section] of sections) section.hidden = pid !== id;
    for (const tab of tabs) {
      const selected = tab.id === `tab-${id}`;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
    }
    sections.get(id)?.onShow?.();
    document.title = `Tweedie console: ${PAGES.find((p) => p[0] === id)?.[1]}`;
  };
  window.addEventListener('hashchange', show);
  show();
  document.body.setAttribute('data-ready', 'true');
}

start();
