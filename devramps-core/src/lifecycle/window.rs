//! Deployment time windows (lifecycle rule L8), in the `America/Los_Angeles` zone with its
//! daylight-saving rules (the zone database is bundled, so results do not depend on the host).
//!
//! `PACIFIC_WORKING_HOURS` is open Monday to Friday from 09:00 (inclusive) to 17:00
//! (exclusive); `PACIFIC_WORKING_HOURS_REDUCED` from 10:00 to 16:00; `NONE` always. No
//! holidays.

use std::sync::OnceLock;

use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::pipeline::TimeWindow;

/// The zone of every window.
pub const PACIFIC_ZONE: &str = "America/Los_Angeles";

fn pacific() -> &'static TimeZone {
    static ZONE: OnceLock<TimeZone> = OnceLock::new();
    ZONE.get_or_init(|| {
        TimeZone::get(PACIFIC_ZONE).expect("the bundled time zone database has America/Los_Angeles")
    })
}

impl TimeWindow {
    /// The open hours `[start, end)` of a working-hours window, local time; `None` for `NONE`.
    pub fn hours(self) -> Option<(i8, i8)> {
        match self {
            TimeWindow::None => None,
            TimeWindow::PacificWorkingHours => Some((9, 17)),
            TimeWindow::PacificWorkingHoursReduced => Some((10, 16)),
        }
    }

    /// Whether a stage-deployment may start at `at`.
    ///
    /// ```
    /// use devramps_core::pipeline::TimeWindow;
    /// let tue_0900_pdt: jiff::Timestamp = "2026-06-02T16:00:00Z".parse().unwrap();
    /// assert!(TimeWindow::PacificWorkingHours.is_open(tue_0900_pdt));
    /// assert!(!TimeWindow::PacificWorkingHoursReduced.is_open(tue_0900_pdt));
    /// ```
    pub fn is_open(self, at: Timestamp) -> bool {
        let Some((start, end)) = self.hours() else {
            return true;
        };
        let local = at.to_zoned_datetime(pacific().clone());
        is_weekday(local.weekday()) && (start..end).contains(&local.hour())
    }

    /// The first instant at or after `at` when the window is open (`at` itself when open).
    pub fn next_opening(self, at: Timestamp) -> Timestamp {
        let Some((start, _)) = self.hours() else {
            return at;
        };
        if self.is_open(at) {
            return at;
        }
        let zone = pacific();
        let today = at.to_zoned_datetime(zone.clone()).date();
        for offset in 0..8_i64 {
            let Ok(date) = today.checked_add(offset.days()) else {
                break;
            };
            if !is_weekday(date.weekday()) {
                continue;
            }
            let Ok(opening) = date.at(start, 0, 0, 0).to_zoned_datetime(zone.clone()) else {
                continue;
            };
            let opening = opening.timestamp();
            if opening >= at {
                return opening;
            }
        }
        at
    }

    /// When an open window closes next (`None` for `NONE`, or when closed at `at`).
    pub fn next_closing(self, at: Timestamp) -> Option<Timestamp> {
        let (_, end) = self.hours()?;
        if !self.is_open(at) {
            return None;
        }
        let local = at.to_zoned_datetime(pacific().clone());
        local
            .date()
            .at(end, 0, 0, 0)
            .to_zoned_datetime(pacific().clone())
            .ok()
            .map(|z| z.timestamp())
    }
}

fn is_weekday(day: Weekday) -> bool {
    !matches!(day, Weekday::Saturday | Weekday::Sunday)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn la(civil: &str) -> Timestamp {
        civil
            .parse::<jiff::civil::DateTime>()
            .expect("civil time")
            .to_zoned_datetime(pacific().clone())
            .expect("exists in LA")
            .timestamp()
    }

    const PWH: TimeWindow = TimeWindow::PacificWorkingHours;
    const REDUCED: TimeWindow = TimeWindow::PacificWorkingHoursReduced;

    #[test]
    fn scenario_09_pacific_working_hours_boundaries() {
        // 2026-11-24 is a Tuesday, 2026-11-28 a Saturday.
        assert!(!PWH.is_open(la("2026-11-24T08:59")));
        assert!(PWH.is_open(la("2026-11-24T09:00")));
        assert!(PWH.is_open(la("2026-11-24T16:59")));
        assert!(!PWH.is_open(la("2026-11-24T17:00")));
        assert!(!PWH.is_open(la("2026-11-28T12:00")));
    }

    #[test]
    fn scenario_10_reduced_window() {
        // 2026-11-25 is a Wednesday.
        assert!(!REDUCED.is_open(la("2026-11-25T09:30")));
        assert!(REDUCED.is_open(la("2026-11-25T10:00")));
        assert!(REDUCED.is_open(la("2026-11-25T15:59")));
        assert!(!REDUCED.is_open(la("2026-11-25T16:00")));
    }

    #[test]
    fn scenario_11_no_holidays() {
        assert!(PWH.is_open(la("2026-12-24T11:00")));
        assert!(PWH.is_open(la("2026-12-25T11:00")));
    }

    #[test]
    fn scenario_12_follows_daylight_saving_time() {
        let pdt: Timestamp = "2026-03-09T16:00:00Z".parse().expect("ts");
        let pst: Timestamp = "2026-03-02T17:00:00Z".parse().expect("ts");
        assert!(PWH.is_open(pdt));
        assert!(PWH.is_open(pst));
        // One hour earlier in UTC is 08:00 local on both days.
        assert!(!PWH.is_open("2026-03-09T15:00:00Z".parse().expect("ts")));
        assert!(!PWH.is_open("2026-03-02T16:00:00Z".parse().expect("ts")));
    }

    #[test]
    fn none_is_always_open() {
        assert!(TimeWindow::None.is_open(la("2026-11-28T03:00")));
        assert_eq!(
            TimeWindow::None.next_opening(la("2026-11-28T03:00")),
            la("2026-11-28T03:00")
        );
        assert_eq!(TimeWindow::None.next_closing(la("2026-11-28T03:00")), None);
    }

    #[test]
    fn next_opening_skips_nights_and_weekends_across_dst() {
        // Saturday 10:00 -> Monday 09:00 (scenario 13).
        assert_eq!(
            PWH.next_opening(la("2026-11-28T10:00")),
            la("2026-11-30T09:00")
        );
        // Friday 17:00 -> Monday 09:00.
        assert_eq!(
            PWH.next_opening(la("2026-11-27T17:00")),
            la("2026-11-30T09:00")
        );
        // Tuesday 07:00 -> Tuesday 10:00 for the reduced window.
        assert_eq!(
            REDUCED.next_opening(la("2026-11-24T07:00")),
            la("2026-11-24T10:00")
        );
        // Over the spring-forward weekend (2026-03-08), Monday opens at 09:00 PDT = 16:00 UTC.
        let monday: Timestamp = "2026-03-09T16:00:00Z".parse().expect("ts");
        assert_eq!(PWH.next_opening(la("2026-03-07T12:00")), monday);
        // Open already: unchanged; closes at 17:00 the same day.
        assert_eq!(
            PWH.next_opening(la("2026-11-24T12:00")),
            la("2026-11-24T12:00")
        );
        assert_eq!(
            PWH.next_closing(la("2026-11-24T12:00")),
            Some(la("2026-11-24T17:00"))
        );
    }
}
