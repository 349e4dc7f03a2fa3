// Hex grid maths on axial coordinates (q = x, r = y), pointy-top, after Red Blob Games'
// "Hexagonal Grids". Pure functions; `size` is the distance from a hex's centre to a corner.

const SQRT3 = Math.sqrt(3);

/** A number naming a map hex (x 0..1999, y 0..999 on Nacridan's map). */
export function hexId(x, y) {
  return x * 1024 + y;
}

/** The (x, y) of a hexId. */
export function hexOf(id) {
  const y = ((id % 1024) + 1024) % 1024;
  return [(id - y) / 1024, y];
}

/** Hex distance between two axial positions. */
export function distance(x1, y1, x2, y2) {
  const dq = x2 - x1;
  const dr = y2 - y1;
  return (Math.abs(dq) + Math.abs(dr) + Math.abs(dq + dr)) / 2;
}

/** Every hex within distance r of (x, y). */
export function disk(x, y, r) {
  const out = [];
  for (let dq = -r; dq <= r; dq++) {
    const lo = Math.max(-r, -dq - r);
    const hi = Math.min(r, -dq + r);
    for (let dr = lo; dr <= hi; dr++) out.push([x + dq, y + dr]);
  }
  return out;
}

/** Pixel centre of a hex (world pixels at this size). */
export function toPixel(q, r, size) {
  return [size * (SQRT3 * q + (SQRT3 / 2) * r), size * 1.5 * r];
}

/** The fractional axial position under a world pixel. */
export function fromPixel(px, py, size) {
  const r = (py * 2) / 3 / size;
  const q = (px * SQRT3) / 3 / size - r / 2;
  return [q, r];
}

/** The hex holding a fractional axial position (cube rounding). */
export function round(q, r) {
  const s = -q - r;
  let rq = Math.round(q);
  let rr = Math.round(r);
  const rs = Math.round(s);
  const dq = Math.abs(rq - q);
  const dr = Math.abs(rr - r);
  const ds = Math.abs(rs - s);
  if (dq > dr && dq > ds) rq = -rr - rs;
  else if (dr > ds) rr = -rq - rs;
  return [rq, rr];
}

/** Corner offsets of a pointy-top hex of this size, from its centre. */
export function corners(size) {
  const out = [];
  for (let i = 0; i < 6; i++) {
    const angle = (Math.PI / 180) * (60 * i - 30);
    out.push([size * Math.cos(angle), size * Math.sin(angle)]);
  }
  return out;
}

/** The radius of the hex disk around the centre that covers a w x h screen. */
export function coveringRadius(width, height, size) {
  return Math.ceil(Math.hypot(width, height) / 2 / (1.5 * size)) + 1;
}
