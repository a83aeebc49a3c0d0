// A local copy of one symbol's order book, kept from its `book.SYM` stream: shared by the
// web app's market screen and the classroom's play page.

/**
 * Folds one `book.SYM` message into `copy` ({ bids, asks: Map price → size, bookSeq,
 * resyncing, resyncs }). A snapshot replaces the copy. A merged delta (covering
 * firstBookSeq..bookSeq with new totals; size 0: the level is gone) is applied unless the
 * copy already holds it. A gap means the copy is wrong from there: it is marked resyncing
 * and `resync()` is called, which subscribes again (the next snapshot repairs it).
 * Returns whether the copy changed.
 */
export function applyBook(copy, d, resync) {
  if (d.type === "snapshot") {
    copy.bids = new Map(d.bids);
    copy.asks = new Map(d.asks);
    copy.bookSeq = d.bookSeq;
    copy.resyncing = false;
    return true;
  }
  if (copy.resyncing || d.bookSeq <= copy.bookSeq) return false;
  if ((d.firstBookSeq ?? d.bookSeq) > copy.bookSeq + 1) {
    copy.resyncing = true;
    copy.resyncs = (copy.resyncs ?? 0) + 1;
    resync();
    return false;
  }
  for (const [p, q] of d.bids) (Number(q) ? copy.bids.set(p, q) : copy.bids.delete(p));
  for (const [p, q] of d.asks) (Number(q) ? copy.asks.set(p, q) : copy.asks.delete(p));
  copy.bookSeq = d.bookSeq;
  return true;
}
