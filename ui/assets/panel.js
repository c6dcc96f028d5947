// The section panel: a click (or Enter) on a source opens its page in the evidence view.
// `element` is the panel's root; its content is replaced on every update, so the listener is
// delegated from it.
element.addEventListener('click', (e) => {
  const source = e.target.closest('button.source');
  const panel = e.target.closest('.panel');
  if (!source || !panel) return;
  trigger('select', { index: Number(panel.dataset.block), value: { op: 'source', ...source.dataset } });
});
