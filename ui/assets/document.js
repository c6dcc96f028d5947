// The draft as a document: selection toolbar, in-place editing, citations, outline, keyboard.
// Runs once per page as the document component's js_on_load: `element` is the component's root
// (its content is replaced on every update, so every listener is delegated from it), and
// `trigger(event, data)` sends an event to the server. Operations on text go as
// trigger('select', {index: block, value: {op, ...}}); runs (re-run) as trigger('submit', ...).
// Character offsets count the section's text exactly as the server rendered it: every text
// node of a `.doc-text` except those inside `[data-skip]` (deleted text, citation markers).

const SKIP = '[data-skip]';
let chosen = null; // {block, start, end} of the selection the toolbar acts on
let focused = null; // the block whose panel the server shows

function sectionOf(node) {
  const el = node && (node.nodeType === 1 ? node : node.parentElement);
  const box = el ? el.closest('.doc-text') : null;
  return box && element.contains(box) ? box : null;
}

function textNodes(box) {
  const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => (n.parentElement.closest(SKIP) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  return nodes;
}

function plainText(box) {
  return textNodes(box).map((n) => n.data).join('');
}

function offsetIn(box, node, offset) {
  const range = document.createRange();
  range.setStart(box, 0);
  range.setEnd(node, offset);
  let count = 0;
  for (const text of textNodes(box)) {
    if (text === node) return count + offset;
    if (!range.intersectsNode(text)) break;
    count += text.length;
  }
  return count;
}

function currentSelection() {
  const selection = window.getSelection();
  if (!selection.rangeCount || selection.isCollapsed) return null;
  const range = selection.getRangeAt(0);
  const box = sectionOf(range.startContainer);
  if (!box || box !== sectionOf(range.endContainer)) return null;
  const start = offsetIn(box, range.startContainer, range.startOffset);
  const end = offsetIn(box, range.endContainer, range.endOffset);
  return end > start ? { block: Number(box.dataset.block), start, end, rect: range.getBoundingClientRect() } : null;
}

function running() {
  const doc = element.querySelector('.doc');
  return doc && doc.dataset.state === 'running';
}

let bar = document.getElementById('selection-toolbar');
if (!bar) {
  bar = document.createElement('div');
  bar.id = 'selection-toolbar';
  bar.setAttribute('role', 'toolbar');
  bar.setAttribute('aria-label', 'Selected text');
  bar.hidden = true;
  bar.innerHTML =
    '<button data-op="pin" title="Pin: this text never changes (Alt+P)">Pin</button>' +
    '<button data-op="unpin" title="Unpin (Alt+U)">Unpin</button>' +
    '<button data-op="rerun" title="Re-run this section; pinned text stays (Alt+R)">Re-run section</button>' +
    '<button data-op="retarget" title="Choose the documents this section follows (Alt+T)">Retarget…</button>';
  document.body.appendChild(bar);
}
bar.addEventListener('mousedown', (e) => e.preventDefault()); // keep the selection
bar.addEventListener('click', (e) => {
  const button = e.target.closest('button[data-op]');
  if (button) act(button.dataset.op);
});
bar.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') hideBar(true);
});

function hideBar(refocus) {
  bar.hidden = true;
  if (refocus && chosen) {
    const box = element.querySelector(`#sec-${chosen.block}-text`);
    if (box) box.focus();
  }
}

function showBar(selection) {
  chosen = selection;
  bar.hidden = false;
  const top = window.scrollY + selection.rect.top - bar.offsetHeight - 6;
  bar.style.top = `${Math.max(top, window.scrollY + 4)}px`;
  bar.style.left = `${window.scrollX + selection.rect.left}px`;
}

document.addEventListener('selectionchange', () => {
  const selection = currentSelection();
  if (selection && !running()) showBar(selection);
  else if (!bar.contains(document.activeElement)) bar.hidden = true;
});

function focusBlock(block) {
  if (focused === block) return;
  focused = block;
  trigger('select', { index: block, value: { op: 'focus' } });
}

function act(op) {
  const selection = currentSelection() || chosen;
  const box = document.activeElement && sectionOf(document.activeElement);
  const block = selection ? selection.block : box ? Number(box.dataset.block) : focused;
  if (block === null || block === undefined) return;
  hideBar(false);
  if (op === 'pin' || op === 'unpin') {
    if (!selection) return;
    trigger('select', { index: block, value: { op, start: selection.start, end: selection.end } });
  } else if (op === 'rerun') {
    focused = block;
    trigger('submit', { index: block, value: { op: 'rerun' } });
  } else if (op === 'retarget') {
    focusBlock(block);
    const input = document.querySelector('#section-targets input');
    if (input) input.focus();
  }
}

function save(box) {
  if (!box.classList.contains('dirty')) return;
  box.classList.remove('dirty');
  trigger('select', { index: Number(box.dataset.block), value: { op: 'edit', text: plainText(box) } });
}

element.addEventListener('click', (e) => {
  const goto = e.target.closest('[data-goto]');
  if (goto) {
    e.preventDefault();
    const box = element.querySelector(`#sec-${goto.dataset.goto}-text`);
    if (box) {
      box.scrollIntoView({ block: 'start' });
      box.focus();
    }
    return;
  }
  const cite = e.target.closest('sup.cite');
  const button = e.target.closest('button[data-op]');
  const section = e.target.closest('.doc-section');
  if (!section) return;
  const block = Number(section.dataset.block);
  if (cite) {
    focused = block;
    trigger('select', { index: block, value: { op: 'cite', sentence: Number(cite.dataset.sentence) } });
  } else if (button) {
    focused = block;
    trigger('select', { index: block, value: { op: button.dataset.op } });
  } else {
    focusBlock(block);
  }
});

element.addEventListener('focusin', (e) => {
  const box = sectionOf(e.target);
  if (!box) return;
  if (!box.classList.contains('dirty')) box.dataset.original = box.innerHTML;
  focusBlock(Number(box.dataset.block));
});

element.addEventListener('focusout', (e) => {
  const box = sectionOf(e.target);
  if (box && !box.contains(e.relatedTarget)) save(box); // leaving a section saves its edit
});

element.addEventListener('input', (e) => {
  const box = sectionOf(e.target);
  if (box) box.classList.add('dirty');
});

element.addEventListener('paste', (e) => {
  if (!sectionOf(e.target)) return;
  e.preventDefault(); // plain text only: markup pasted into a section would not be its text
  document.execCommand('insertText', false, e.clipboardData.getData('text/plain'));
});

element.addEventListener('keydown', (e) => {
  const cite = e.target.closest && e.target.closest('sup.cite');
  if (cite && (e.key === 'Enter' || e.key === ' ')) {
    e.preventDefault();
    cite.click();
    return;
  }
  const box = sectionOf(e.target);
  if (!box) return;
  const shortcuts = { KeyP: 'pin', KeyU: 'unpin', KeyR: 'rerun', KeyT: 'retarget' };
  if (e.altKey && shortcuts[e.code]) {
    e.preventDefault();
    if (box.classList.contains('dirty')) save(box);
    act(shortcuts[e.code]);
  } else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    save(box);
  } else if (e.key === 'Escape' && box.classList.contains('dirty')) {
    e.preventDefault();
    box.innerHTML = box.dataset.original || box.innerHTML;
    box.classList.remove('dirty');
  } else if (e.key === 'Enter') {
    e.preventDefault(); // a line break as text, not a <div> the section's text cannot hold
    document.execCommand('insertText', false, '\n');
  }
});
