//! Spend over time as an SVG drawn by the server: one stacked bar per day, one colour per
//! series, a money axis with round steps. Amounts stay `Decimal`; only pixel positions
//! are turned into numbers for drawing.

use chrono::NaiveDate;
use maud::{html, Markup};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use super::page::usd;
use super::view::Series;

/// Series colours (the last one, grey, is "others" when there is such a series).
pub const COLOURS: [&str; 6] = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#9c9c9c"];

const WIDTH: u32 = 960;
const HEIGHT: u32 = 280;
const LEFT: u32 = 76;
const RIGHT: u32 = 12;
const TOP: u32 = 12;
const BOTTOM: u32 = 36;
/// Most day labels under the axis.
const X_LABELS: usize = 12;
/// About how many steps the money axis has.
const Y_STEPS: u32 = 4;

/// The colour of series `i` (`others` marks the summed last series).
pub fn colour(i: usize, count: usize, others: bool) -> &'static str {
    if others && i + 1 == count {
        COLOURS[COLOURS.len() - 1]
    } else {
        COLOURS[i % (COLOURS.len() - 1)]
    }
}

/// The smallest round step (1, 2 or 5 times a power of ten) with which `steps` steps
/// reach `max`.
pub fn step(max: Decimal, steps: u32) -> Decimal {
    if max <= Decimal::ZERO {
        return Decimal::ONE;
    }
    let want = max / Decimal::from(steps);
    let mut power = Decimal::ONE;
    while power > want && power.scale() < 20 {
        power /= Decimal::TEN;
    }
    // Checked: near Decimal's limit (about 7.9e28) a step stays as large as it can be.
    while let Some(next) = power.checked_mul(Decimal::TEN).filter(|p| *p <= want) {
        power = next;
    }
    [1u32, 2, 5, 10]
        .into_iter()
        .filter_map(|m| power.checked_mul(Decimal::from(m)))
        .find(|s| s.checked_mul(Decimal::from(steps)).is_none_or(|reach| reach >= max))
        .unwrap_or(power)
}

fn px(v: Decimal) -> String {
    format!("{:.2}", v.to_f64().unwrap_or(0.0))
}

/// The chart of `series` over `days`; `others` says the last series sums the rest.
pub fn draw(days: &[NaiveDate], series: &[Series], others: bool) -> Markup {
    let totals: Vec<Decimal> = (0..days.len())
        .map(|i| series.iter().map(|s| s.per_day.get(i).copied().unwrap_or_default()).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or_default();
    let step = step(max, Y_STEPS);
    let steps =
        if max > Decimal::ZERO { (max / step).ceil().to_u32().unwrap_or(Y_STEPS).max(1) } else { Y_STEPS };
    let top = step.saturating_mul(Decimal::from(steps));
    let plot_w = Decimal::from(WIDTH - LEFT - RIGHT);
    let plot_h = Decimal::from(HEIGHT - TOP - BOTTOM);
    let slot = if days.is_empty() { plot_w } else { plot_w / Decimal::from(days.len()) };
    let bar = (slot * Decimal::new(8, 1)).max(Decimal::ONE);
    let y_of = |v: Decimal| Decimal::from(TOP) + plot_h - v / top * plot_h;
    let label_every = days.len().div_ceil(X_LABELS).max(1);
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
            role="img" aria-label="Spend per day" data-max-usd=(max) {
            @for k in 0..=steps {
                @let v = step.saturating_mul(Decimal::from(k));
                @let y = px(y_of(v));
                line.grid x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y) y2=(y) {}
                text.axis x=(LEFT - 6) y=(y) text-anchor="end" dominant-baseline="middle" { (usd(v)) }
            }
            @for (i, day) in days.iter().enumerate() {
                @let x = Decimal::from(LEFT) + slot * Decimal::from(i as u64) + (slot - bar) / Decimal::TWO;
                g.day data-day=(day) data-usd=(totals[i]) {
                    title { (day) ": " (usd(totals[i])) }
                    @let mut base = Decimal::ZERO;
                    @for (s, line) in series.iter().enumerate() {
                        @let v = line.per_day.get(i).copied().unwrap_or_default();
                        @if v > Decimal::ZERO {
                            @let y = y_of(base + v);
                            @let h = y_of(base) - y;
                            rect x=(px(x)) y=(px(y)) width=(px(bar)) height=(px(h))
                                fill=(colour(s, series.len(), others)) {
                                title { (day) " · " (line.label) ": " (usd(v)) }
                            }
                            ({ base += v; "" })
                        }
                    }
                }
                @if i % label_every == 0 {
                    text.axis x=(px(x + bar / Decimal::TWO)) y=(HEIGHT - BOTTOM + 16) text-anchor="middle" {
                        (day.format("%m-%d"))
                    }
                }
            }
            line.base x1=(LEFT) x2=(WIDTH - RIGHT) y1=(HEIGHT - BOTTOM) y2=(HEIGHT - BOTTOM) {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn steps_are_round_and_reach_the_top() {
        for (max, want) in [
            ("0.0009", "0.0005"),
            ("1", "0.5"),
            ("3.7", "1"),
            ("9", "5"),
            ("10", "5"),
            ("123.45", "50"),
            ("0.000001", "0.0000005"),
            ("0", "1"),
        ] {
            let s = step(d(max), 4);
            assert_eq!(s, d(want), "max {max}");
            assert!(s * Decimal::from(4) >= d(max));
        }
        // Near Decimal's limit: no overflow, a step as large as can be.
        assert!(step(Decimal::MAX, 4) > Decimal::ZERO);
    }

    #[test]
    fn bars_stack_to_each_days_total() {
        let days: Vec<NaiveDate> =
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap().iter_days().take(3).collect();
        let series = vec![
            Series { label: "a".into(), per_day: vec![d("1"), d("0"), d("2")] },
            Series { label: "<b>".into(), per_day: vec![d("0.5"), d("0"), d("2")] },
        ];
        let svg = draw(&days, &series, false).into_string();
        assert!(svg.contains(r#"data-day="2026-11-01" data-usd="1.5""#), "{svg}");
        assert!(svg.contains(r#"data-day="2026-11-02" data-usd="0""#));
        assert_eq!(svg.matches("<rect").count(), 4, "no bar for a day without spend");
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "labels are escaped");
    }
}
