//! A token bucket for what a worker may originate at a bounded rate: ICMP errors (RFC 1812
//! section 4.3.2.8 says a router should, RFC 4443 section 2.4 (f) that an IPv6 node must, limit
//! them) and ARP requests / neighbour solicitations for new destinations (RFC 6583 section 6:
//! a scan of a large subnet must not turn into a flood of requests). Kept as time credit in nanoseconds, so taking a token is an add, a compare and a
//! subtract, with no division and no clock read of its own: the worker passes the loop turn's
//! `now`.

/// Up to `burst` tokens, refilled at `per_sec` a second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    /// Nanoseconds a token costs (`1e9 / per_sec`, at least 1).
    interval: u64,
    /// The most credit held: `burst` tokens' worth.
    capacity: u64,
    /// Credit at `last`.
    credit: u64,
    last: u64,
}

impl TokenBucket {
    /// A full bucket at time `now` (ns). `per_sec` and `burst` of 0 are taken as 1.
    pub fn new(per_sec: u32, burst: u32, now: u64) -> TokenBucket {
        let interval = (1_000_000_000 / u64::from(per_sec.max(1))).max(1);
        let capacity = interval * u64::from(burst.max(1));
        TokenBucket { interval, capacity, credit: capacity, last: now }
    }

    /// Whether [`TokenBucket::take`] at `now` would get a token; takes nothing.
    pub fn has_token(&self, now: u64) -> bool {
        let earned = now.saturating_sub(self.last);
        self.credit.saturating_add(earned).min(self.capacity) >= self.interval
    }

    /// Takes a token at `now` if there is one. A clock that goes backwards adds nothing.
    pub fn take(&mut self, now: u64) -> bool {
        let earned = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.credit = self.credit.saturating_add(earned).min(self.capacity);
        if self.credit < self.interval {
            return false;
        }
        self.credit -= self.interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_burst_then_the_rate() {
        // 1000 a second, bursts of 50: one token a millisecond.
        let mut b = TokenBucket::new(1000, 50, 0);
        assert_eq!((0..100).filter(|_| b.take(0)).count(), 50, "the burst at once");
        assert!(!b.take(0));
        assert!(!b.take(MS - 1), "not a whole token yet");
        assert!(!b.has_token(MS - 1) && b.has_token(MS), "asking takes nothing");
        assert!(b.take(MS));
        assert!(!b.take(MS) && !b.has_token(MS));
        // A quiet second refills the burst, and no more.
        assert_eq!((0..100).filter(|_| b.take(2000 * MS)).count(), 50);
    }

    #[test]
    fn time_going_backwards_earns_nothing() {
        let mut b = TokenBucket::new(1000, 1, 10 * MS);
        assert!(b.take(10 * MS));
        assert!(!b.take(5 * MS));
        assert!(!b.take(10 * MS), "the earlier time did not reset the clock");
        assert!(b.take(11 * MS));
    }

    #[test]
    fn degenerate_settings_still_let_one_through() {
        let mut b = TokenBucket::new(0, 0, 0);
        assert!(b.take(0));
        assert!(!b.take(0));
        assert!(b.take(1_000_000_000), "one a second");
        let mut fast = TokenBucket::new(u32::MAX, 1, 0);
        assert!(fast.take(0) && fast.take(1), "faster than a token a nanosecond: one a nanosecond");
    }
}
