//! UTC calendar windows for spend counters and budgets: daily, weekly (Monday start),
//! monthly, and `total`, which never resets.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

/// A budget or counter period.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Daily,
    Weekly,
    Monthly,
    Total,
}

impl Period {
    /// Every period, in the order counters are kept.
    pub const ALL: [Period; 4] = [Period::Daily, Period::Weekly, Period::Monthly, Period::Total];

    /// The name stored in the database and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Total => "total",
        }
    }

    /// Parses a stored or submitted name.
    pub fn parse(s: &str) -> Option<Period> {
        Period::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Start of the window containing `t`.
    pub fn start(self, t: DateTime<Utc>) -> DateTime<Utc> {
        let date = t.date_naive();
        let day = match self {
            Period::Daily => date,
            Period::Weekly => date - Duration::days(i64::from(date.weekday().num_days_from_monday())),
            Period::Monthly => date.with_day(1).unwrap_or(date),
            Period::Total => return DateTime::<Utc>::UNIX_EPOCH,
        };
        midnight(day)
    }

    /// End (exclusive) of the window containing `t`; `None` for `total`.
    pub fn end(self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = self.start(t).date_naive();
        let next = match self {
            Period::Daily => start.succ_opt()?,
            Period::Weekly => start + Duration::days(7),
            Period::Monthly => {
                let (y, m) = if start.month() == 12 {
                    (start.year() + 1, 1)
                } else {
                    (start.year(), start.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1)?
            }
            Period::Total => return None,
        };
        Some(midnight(next))
    }
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_follow_the_utc_calendar() {
        let now = t("2026-11-29T23:59:59.999Z"); // a Sunday
        assert_eq!(Period::Daily.start(now), t("2026-11-29T00:00:00Z"));
        assert_eq!(Period::Daily.end(now), Some(t("2026-11-30T00:00:00Z")));
        assert_eq!(Period::Weekly.start(now), t("2026-11-23T00:00:00Z"));
        assert_eq!(Period::Weekly.end(now), Some(t("2026-11-30T00:00:00Z")));
        assert_eq!(Period::Monthly.start(now), t("2026-11-01T00:00:00Z"));
        assert_eq!(Period::Monthly.end(now), Some(t("2026-12-01T00:00:00Z")));
        assert_eq!(Period::Monthly.end(t("2026-12-31T10:00:00Z")), Some(t("2027-01-01T00:00:00Z")));
        assert_eq!(Period::Weekly.start(t("2026-11-30T00:00:00Z")), t("2026-11-30T00:00:00Z"));
        assert_eq!(Period::Total.start(now), DateTime::<Utc>::UNIX_EPOCH);
        assert_eq!(Period::Total.end(now), None);
    }

    #[test]
    fn names_round_trip() {
        for p in Period::ALL {
            assert_eq!(Period::parse(p.as_str()), Some(p));
        }
        assert_eq!(Period::parse("yearly"), None);
    }
}
