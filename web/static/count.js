// − / + beside a count field (the `count_input` macro in _count.html): shown once this module
// runs; each press changes the field by one within its min and max. Typing still works.
for (const button of document.querySelectorAll("button.step[data-for]")) {
  const field = document.getElementById(button.dataset.for);
  if (!field) {
    continue;
  }
  button.hidden = false;
  button.addEventListener("click", () => {
    const step = Number(button.dataset.step);
    const low = field.min === "" ? -Infinity : Number(field.min);
    const high = field.max === "" ? Infinity : Number(field.max);
    const now = Number.parseInt(field.value, 10);
    const next = Math.min(high, Math.max(low, (Number.isNaN(now) ? 0 : now) + step));
    field.value = String(next);
    field.dispatchEvent(new Event("change", { bubbles: true }));
  });
}
