//! The counts the receiver keeps per process (restarts, exits) and how each report of them
//! reads: cumulative, counting from when the receiver first saw the process, or delta, counting
//! from where the series' previous point ended (the OpenTelemetry data model's rule, so a
//! backend summing delta points gets the cumulative count back with no gap and no overlap).
//!
//! A series lives as long as its process is monitored; the tracker that holds it is handed from
//! one poll task to the next across a reload, so a reload neither restarts a cumulative series
//! nor leaves a hole between two delta points.

use crate::settings::Temporality;

/// One count of one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountSeries {
    total: u64,
    /// `total` as of the last delta point.
    reported: u64,
    /// When the receiver first saw the process: the start of every cumulative point.
    first_seen_unix_nano: u64,
    /// When the last delta point ended (initially `first_seen_unix_nano`).
    reported_until_unix_nano: u64,
}

impl CountSeries {
    pub fn new(first_seen_unix_nano: u64) -> CountSeries {
        CountSeries {
            total: 0,
            reported: 0,
            first_seen_unix_nano,
            reported_until_unix_nano: first_seen_unix_nano,
        }
    }

    pub fn add(&mut self, n: u64) {
        self.total = self.total.saturating_add(n);
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The next point at `now`: `(start_time_unix_nano, value)`. A delta point moves the
    /// series' start to `now`, so the next one begins where this one ends.
    pub fn point(&mut self, temporality: Temporality, now_unix_nano: u64) -> (u64, u64) {
        match temporality {
            Temporality::Cumulative => (self.first_seen_unix_nano, self.total),
            Temporality::Delta => {
                let start = self.reported_until_unix_nano;
                let value = self.total - self.reported;
                self.reported = self.total;
                // A clock stepped back never makes a point end before it starts.
                self.reported_until_unix_nano = now_unix_nano.max(start);
                (start, value)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cumulative_points_count_from_first_sight() {
        let mut s = CountSeries::new(100);
        assert_eq!(s.point(Temporality::Cumulative, 200), (100, 0));
        s.add(2);
        assert_eq!(s.point(Temporality::Cumulative, 300), (100, 2));
        assert_eq!(s.point(Temporality::Cumulative, 400), (100, 2));
    }

    #[test]
    fn delta_points_start_where_the_previous_one_ended() {
        let mut s = CountSeries::new(100);
        s.add(1);
        assert_eq!(s.point(Temporality::Delta, 200), (100, 1));
        assert_eq!(s.point(Temporality::Delta, 300), (200, 0));
        s.add(3);
        assert_eq!(s.point(Temporality::Delta, 400), (300, 3));
        assert_eq!(s.total(), 4);
        // A clock that went back: the point is empty-length, never inverted.
        s.add(1);
        assert_eq!(s.point(Temporality::Delta, 350), (400, 1));
        assert_eq!(s.point(Temporality::Delta, 500), (400, 0));
    }
}
