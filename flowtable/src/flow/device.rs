//! What a flow depends on: the device tags its simulation read, in a 32-byte set.

use core::fmt;

/// A device tag: the dense number the snapshot compiler gives each thing a simulation result can
/// depend on (MidoNet's device tags: routers, bridges, ports, chains, port groups, IP address
/// groups, the `topology::DeviceId` kinds), numbered from 0 across all kinds.
///
/// The cache folds tags onto [`TAG_SLOTS`] slots (`tag % TAG_SLOTS`). Below `TAG_SLOTS` that is the
/// identity and invalidation is exact; above it, two tags may share a slot, and invalidating one
/// also invalidates flows that depended on the other: more than needed, never less.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceTag(pub u32);

/// How many distinct tag slots there are: tags below this invalidate exactly.
pub const TAG_SLOTS: usize = 0xfffe;

const EMPTY: u16 = 0xffff;
const ANY: u16 = 0xfffe;

impl DeviceTag {
    /// The slot this tag is kept and invalidated under.
    pub const fn slot(self) -> u16 {
        (self.0 % TAG_SLOTS as u32) as u16
    }
}

/// The device tags a flow depends on: up to [`TagSet::CAPACITY`] (16) slots in 32 bytes, kept
/// with every flow entry. A set that would overflow becomes *any*: the flow then depends on every
/// device, so any invalidation removes it. That is conservative (a flow is never kept past a change
/// it depended on) and counted (`FlowCacheStats::tags_overflow`), so a simulation that tags too
/// finely shows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TagSet {
    /// Slots in insertion order, then `EMPTY`; or `[ANY, EMPTY, ..]`.
    slots: [u16; TagSet::CAPACITY],
}

impl Default for TagSet {
    fn default() -> Self {
        TagSet::new()
    }
}

impl TagSet {
    /// How many distinct slots a set holds before it becomes *any*.
    pub const CAPACITY: usize = 16;

    /// The empty set: a flow that depends on no device (only `invalidate_all` removes it).
    pub const fn new() -> TagSet {
        TagSet { slots: [EMPTY; TagSet::CAPACITY] }
    }

    /// The set that depends on every device.
    pub const fn any() -> TagSet {
        let mut slots = [EMPTY; TagSet::CAPACITY];
        slots[0] = ANY;
        TagSet { slots }
    }

    /// The set of `tags` (duplicates collapse); *any* if they do not fit.
    pub fn from_tags(tags: &[DeviceTag]) -> TagSet {
        let mut s = TagSet::new();
        for &t in tags {
            s.insert(t);
        }
        s
    }

    /// Adds `tag`. Returns false if the set is, or has just become, *any*.
    pub fn insert(&mut self, tag: DeviceTag) -> bool {
        if self.is_any() {
            return false;
        }
        let slot = tag.slot();
        for s in &mut self.slots {
            if *s == slot {
                return true;
            }
            if *s == EMPTY {
                *s = slot;
                return true;
            }
        }
        *self = TagSet::any();
        false
    }

    /// True for the set that depends on every device.
    pub const fn is_any(&self) -> bool {
        self.slots[0] == ANY
    }

    /// Number of slots held (0 for *any*).
    pub fn len(&self) -> usize {
        self.slots().count()
    }

    /// True if nothing is held and the set is not *any*.
    pub const fn is_empty(&self) -> bool {
        self.slots[0] == EMPTY
    }

    /// True if a change to `tag` invalidates a flow with this set.
    pub fn depends_on(&self, tag: DeviceTag) -> bool {
        self.is_any() || self.slots.contains(&tag.slot())
    }

    /// The slots held (none for *any*), as [`DeviceTag::slot`] gives them.
    pub fn slots(&self) -> impl Iterator<Item = u16> + '_ {
        self.slots.iter().copied().take_while(|&s| s != EMPTY && s != ANY)
    }
}

impl fmt::Debug for TagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("TagSet(any)")
        } else {
            f.debug_set().entries(self.slots()).finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_dedupes_and_overflows_to_any() {
        let mut s = TagSet::new();
        assert!(s.is_empty() && !s.is_any());
        assert_eq!(s.len(), 0);
        assert!(!s.depends_on(DeviceTag(0)));
        for i in 0..16 {
            assert!(s.insert(DeviceTag(i)));
            assert!(s.insert(DeviceTag(i)));
        }
        assert_eq!(s.len(), 16);
        assert!(s.depends_on(DeviceTag(15)) && !s.depends_on(DeviceTag(16)));
        assert_eq!(s.slots().collect::<Vec<_>>(), (0..16).collect::<Vec<_>>());
        assert!(!s.insert(DeviceTag(16)));
        assert!(s.is_any() && s.depends_on(DeviceTag(12345)) && !s.is_empty());
        assert_eq!(s.len(), 0, "any holds no slot");
        assert!(!s.insert(DeviceTag(1)));
        assert_eq!(format!("{s:?}"), "TagSet(any)");
        assert_eq!(format!("{:?}", TagSet::from_tags(&[DeviceTag(3), DeviceTag(1)])), "{3, 1}");
    }

    #[test]
    fn large_tags_fold_and_never_hit_the_markers() {
        assert_eq!(DeviceTag(TAG_SLOTS as u32 - 1).slot(), 0xfffd);
        assert_eq!(DeviceTag(TAG_SLOTS as u32).slot(), 0);
        assert_eq!(DeviceTag(u32::MAX).slot(), (u32::MAX % TAG_SLOTS as u32) as u16);
        for t in [u32::MAX, u32::MAX - 1, 0xffff, 0xfffe] {
            let s = TagSet::from_tags(&[DeviceTag(t)]);
            assert!(!s.is_any() && s.len() == 1 && s.depends_on(DeviceTag(t)), "{t:#x}");
        }
        // Tags sharing a slot share an entry (and are invalidated together).
        let s = TagSet::from_tags(&[DeviceTag(5), DeviceTag(5 + TAG_SLOTS as u32)]);
        assert_eq!(s.len(), 1);
        assert_eq!(core::mem::size_of::<TagSet>(), 32);
    }
}
