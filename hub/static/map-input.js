// Pointer, wheel, touch and keyboard gestures on the map, turned into camera moves and
// hex hover / tap. One pointer drags, two pinch; a press that does not move is a tap.

const DRAG_THRESHOLD_PX = 4;
const KEY_PAN_PX = 80;
const KEY_ZOOM = 1.25;

export function attachInput(target, view, { onHover, onTap, onDrag }) {
  const pointers = new Map();
  let dragged = false;
  let pinch = null;

  const local = (ev) => {
    const rect = target.getBoundingClientRect();
    return [ev.clientX - rect.left, ev.clientY - rect.top];
  };

  target.addEventListener("pointerdown", (ev) => {
    target.setPointerCapture(ev.pointerId);
    pointers.set(ev.pointerId, local(ev));
    dragged = pointers.size > 1;
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      pinch = { distance: Math.hypot(a[0] - b[0], a[1] - b[1]) };
    }
  });

  target.addEventListener("pointermove", (ev) => {
    const point = local(ev);
    const before = pointers.get(ev.pointerId);
    if (!before) {
      if (ev.pointerType === "mouse") onHover(view.hexAt(...point));
      return;
    }
    pointers.set(ev.pointerId, point);
    if (pointers.size === 1) {
      const dx = point[0] - before[0];
      const dy = point[1] - before[1];
      if (!dragged && Math.hypot(dx, dy) < DRAG_THRESHOLD_PX) {
        pointers.set(ev.pointerId, before);
        return;
      }
      if (!dragged) onDrag();
      dragged = true;
      view.panBy(dx, dy);
    } else if (pointers.size === 2 && pinch) {
      const [a, b] = [...pointers.values()];
      const distance = Math.hypot(a[0] - b[0], a[1] - b[1]);
      if (pinch.distance > 0) view.zoomAt(distance / pinch.distance, (a[0] + b[0]) / 2, (a[1] + b[1]) / 2);
      pinch.distance = distance;
    }
  });

  const release = (ev) => {
    const point = pointers.get(ev.pointerId);
    pointers.delete(ev.pointerId);
    if (pointers.size < 2) pinch = null;
    if (point && !dragged && ev.type === "pointerup") onTap(view.hexAt(...point));
    if (pointers.size === 0) dragged = false;
  };
  target.addEventListener("pointerup", release);
  target.addEventListener("pointercancel", release);
  target.addEventListener("pointerleave", (ev) => { if (ev.pointerType === "mouse") onHover(null); });

  target.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const [x, y] = local(ev);
    view.zoomAt(Math.exp(-ev.deltaY * 0.0015), x, y);
  }, { passive: false });

  target.addEventListener("keydown", (ev) => {
    const moves = { ArrowLeft: [KEY_PAN_PX, 0], ArrowRight: [-KEY_PAN_PX, 0], ArrowUp: [0, KEY_PAN_PX], ArrowDown: [0, -KEY_PAN_PX] };
    if (moves[ev.key]) {
      onDrag();
      view.panBy(...moves[ev.key]);
    } else if (ev.key === "+" || ev.key === "=") view.zoomAt(KEY_ZOOM);
    else if (ev.key === "-" || ev.key === "_") view.zoomAt(1 / KEY_ZOOM);
    else if (ev.key === "Enter" || ev.key === " ") onTap(view.hexAt(view.width / 2, view.height / 2));
    else return;
    ev.preventDefault();
  });
}
