//! The dashboard's HTML (maud: every value is escaped unless marked otherwise). No
//! script, no external resource: a stylesheet in the page and SVG drawn by the server.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use rust_decimal::{Decimal, RoundingStrategy};

use super::chart;
use super::view::{Params, View, GROUPINGS};
use crate::store::SpendRow;

/// The stylesheet, in the page: nothing is loaded from elsewhere.
const STYLE: &str = include_str!("style.css");

/// An amount for reading: cents from a dollar up, six decimals below (list prices are
/// fractions of a cent); the exact amount goes in the `title` and `data-usd` attributes.
pub fn usd(v: Decimal) -> String {
    let abs = v.abs();
    let places = if abs >= Decimal::ONE || abs.is_zero() { 2 } else { 6 };
    let rounded = v.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero).normalize();
    // At least cents: "$0.50", not "$0.5".
    let text = if rounded.scale() < 2 { format!("{rounded:.2}") } else { rounded.to_string() };
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac.is_empty() {
        format!("{sign}${grouped}")
    } else {
        format!("{sign}${grouped}.{frac}")
    }
}

/// A count with thousands separators.
fn count(n: u64) -> String {
    usd(Decimal::from(n)).trim_start_matches('$').trim_end_matches(".00").to_owned()
}

fn money(v: Decimal) -> Markup {
    html! { span title=(format!("${v}")) data-usd=(v) { (usd(v)) } }
}

fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A page around `body`.
fn layout(title: &str, signed_in: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tollgate" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { "tollgate" }
                    span.grow {}
                    @if signed_in {
                        form method="post" action="/dashboard/logout" { button type="submit" { "Sign out" } }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// The login form, with what went wrong last time.
pub fn login(problem: Option<&str>) -> Markup {
    layout(
        "Sign in",
        false,
        html! {
            section.login {
                h2 { "Sign in to the dashboard" }
                @if let Some(problem) = problem { p.error #problem { (problem) } }
                form method="post" action="/dashboard/login" {
                    label { "Admin token" input #token type="password" name="token" autocomplete="current-password" required autofocus; }
                    button.apply #sign-in type="submit" { "Sign in" }
                }
                p.muted { "The token is the " code { "[admin] token" } " of tollgate's configuration \
                    (by default the " code { "TOLLGATE_ADMIN_TOKEN" } " environment variable). \
                    The browser keeps a session cookie for 12 hours, never the token." }
            }
        },
    )
}

/// A page saying what was wrong with the request.
pub fn problem(message: &str, signed_in: bool) -> Markup {
    layout(
        "Dashboard",
        signed_in,
        html! {
            section.error #problem { h2 { "This page cannot be shown" } p { (message) } p { a href="/dashboard" { "Back to the dashboard" } } }
        },
    )
}

/// The dashboard link for `params` with some parameters changed.
fn link(params: &Params, change: &[(&str, Option<String>)]) -> String {
    let mut pairs: Vec<(&str, String)> = vec![
        ("from", params.from.to_string()),
        ("to", params.to.to_string()),
        ("group_by", params.group_name().to_owned()),
    ];
    for (name, value) in [
        ("organization_id", params.organization_id.map(|v| v.to_string())),
        ("project_id", params.project_id.map(|v| v.to_string())),
        ("user_id", params.user_id.map(|v| v.to_string())),
        ("model", params.model.clone()),
    ] {
        if let Some(v) = value {
            pairs.push((name, v));
        }
    }
    for (name, value) in change {
        pairs.retain(|(n, _)| n != name);
        if let Some(v) = value {
            pairs.push((name, v.clone()));
        }
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (n, v) in &pairs {
        query.append_pair(n, v);
    }
    format!("/dashboard?{}", query.finish())
}

/// The filter a group's row drills into (its key as that filter), if it has one.
fn drill(params: &Params, key: Option<&str>) -> Option<String> {
    let key = key?;
    let (filter, next) = match params.group_name() {
        "organization" => ("organization_id", "project"),
        "project" => ("project_id", "user"),
        "user" => ("user_id", "model"),
        "model" => ("model", "project"),
        _ => return None,
    };
    Some(link(params, &[(filter, Some(key.to_owned())), ("group_by", Some(next.to_owned()))]))
}

fn sums(row: &SpendRow) -> Markup {
    html! {
        td.n { (count(row.requests)) }
        td.n { (count(row.input_tokens)) }
        td.n { (count(row.output_tokens)) }
        td.n.cost { (money(row.cost_usd)) }
    }
}

/// The dashboard itself.
pub fn dashboard(view: &View, today: NaiveDate, signed_in: bool) -> Markup {
    let p = &view.params;
    let range = |days: i64| {
        link(
            p,
            &[
                ("from", Some((today - TimeDelta::days(days - 1)).to_string())),
                ("to", Some(today.to_string())),
            ],
        )
    };
    let month_start = today.with_day0(0).unwrap_or(today);
    let others = view.series.len() > 1 && view.series.last().is_some_and(|s| s.label.ends_with(" others"));
    layout(
        "Dashboard",
        signed_in,
        html! {
            section #range {
                form.range method="get" action="/dashboard" {
                    label { "From" input #from type="date" name="from" value=(p.from) required; }
                    label { "To (inclusive)" input #to type="date" name="to" value=(p.to) required; }
                    label { "Group by"
                        select #group_by name="group_by" {
                            @for (_, name) in GROUPINGS {
                                option value=(name) selected[name == p.group_name()] { (name) }
                            }
                        }
                    }
                    @if let Some(v) = p.organization_id { input type="hidden" name="organization_id" value=(v); }
                    @if let Some(v) = p.project_id { input type="hidden" name="project_id" value=(v); }
                    @if let Some(v) = p.user_id { input type="hidden" name="user_id" value=(v); }
                    @if let Some(v) = &p.model { input type="hidden" name="model" value=(v); }
                    button.apply #apply type="submit" { "Apply" }
                    span.quick {
                        a href=(range(1)) { "today" }
                        a href=(range(7)) { "7 days" }
                        a href=(range(30)) { "30 days" }
                        a href=(range(90)) { "90 days" }
                        a href=(link(p, &[("from", Some(month_start.to_string())), ("to", Some(today.to_string()))])) { "this month" }
                    }
                }
                div.filters {
                    "Days are UTC. "
                    @if view.filters.is_empty() { "All organizations." } @else {
                        "Only "
                        @for (i, (what, name)) in view.filters.iter().enumerate() {
                            @if i > 0 { ", " }
                            (what) " " b { (name) }
                        }
                        ". " a #clear href=(link(p, &[("organization_id", None), ("project_id", None), ("user_id", None), ("model", None)])) { "Show everything" }
                    }
                }
            }
            section #spend {
                h2 { "Spend from " (p.from) " to " (p.to) }
                div.totals {
                    div { b #total-cost { (money(view.total.cost_usd)) } span { "cost" } }
                    div { b #total-requests { (count(view.total.requests)) } span { "requests" } }
                    div { b { (count(view.total.input_tokens)) } span { "input tokens" } }
                    div { b { (count(view.total.output_tokens)) } span { "output tokens" } }
                }
                (chart::draw(&view.days, &view.series, others))
                div.legend {
                    @for (i, s) in view.series.iter().enumerate() {
                        span { span.swatch style=(format!("background:{}", chart::colour(i, view.series.len(), others))) {} (s.label) }
                    }
                }
            }
            section #groups {
                h2 { "By " (p.group_name()) }
                @if view.groups.is_empty() { p.empty { "No requests in this range." } } @else {
                    table {
                        thead { tr { th { (p.group_name()) } th.n { "requests" } th.n { "input tokens" } th.n { "output tokens" } th.n { "cost" } th.n { "share" } } }
                        tbody {
                            @for g in &view.groups {
                                tr.group data-group=(g.key.as_deref().unwrap_or("")) {
                                    td {
                                        @if let Some(href) = drill(p, g.key.as_deref()) { a href=(href) { (g.label) } } @else { (g.label) }
                                    }
                                    (sums(&g.sums))
                                    td.n { (share(g.sums.cost_usd, view.total.cost_usd)) }
                                }
                            }
                            @if let Some((n, rest)) = &view.rest {
                                tr.rest { td.muted { (n) " more" } (sums(rest)) td.n { (share(rest.cost_usd, view.total.cost_usd)) } }
                            }
                        }
                    }
                }
            }
            section #budgets {
                h2 { "Budgets (current windows)" }
                @if view.budgets.is_empty() { p.empty { "No budget applies." } } @else {
                    table {
                        thead { tr { th { "limits" } th { "period" } th { "window" } th { "spent / reserved / remaining" } th.n { "limit" } } }
                        tbody {
                            @for b in &view.budgets {
                                @let s = &b.status;
                                @let over = s.spent_usd + s.reserved_usd > s.budget.limit_usd;
                                tr.budget.over[over] data-budget=(s.budget.id) {
                                    td { (s.budget.scope.as_str()) " " b { (b.scope_name) } @if !s.budget.hard { " " span.badge { "soft" } } }
                                    td { (s.budget.period.as_str()) }
                                    td.muted { (s.window_start.format("%Y-%m-%d %H:%M")) " – " (s.window_end.map_or("open".to_owned(), |e| e.format("%Y-%m-%d %H:%M").to_string())) }
                                    td {
                                        @let (spent, reserved) = widths(s.spent_usd, s.reserved_usd, s.budget.limit_usd);
                                        div.bar title=(format!("spent ${}, reserved ${}, remaining ${}", s.spent_usd, s.reserved_usd, s.remaining_usd)) {
                                            span.spent style=(format!("width:{spent}%")) data-percent=(spent) {}
                                            span.reserved style=(format!("left:{spent}%;width:{reserved}%")) data-percent=(reserved) {}
                                        }
                                        span.muted { (money(s.spent_usd)) " spent · " (money(s.reserved_usd)) " reserved · " span.remaining { (money(s.remaining_usd)) } " left" }
                                    }
                                    td.n { (money(s.budget.limit_usd)) }
                                }
                            }
                        }
                    }
                    @if view.more_budgets > 0 {
                        p.muted #more-budgets { (view.more_budgets) " more budgets (users' last): pick an organization, project or user to see theirs." }
                    }
                }
            }
            section #latest {
                h2 { "Latest requests" }
                @if view.latest.is_empty() { p.empty { "No requests in this range." } } @else {
                    table {
                        thead { tr { th { "time (UTC)" } th { "project" } th { "user" } th { "model" } th.n { "in" } th.n { "out" } th.n { "cost" } th { "usage" } th.n { "status" } th.n { "ms" } } }
                        tbody {
                            @for r in &view.latest {
                                @let c = &r.record;
                                tr.record data-request=(c.request_id) {
                                    td { (time(c.created_at)) }
                                    td { (r.project) }
                                    td { (r.user) }
                                    td { (c.model.as_deref().unwrap_or("—")) span.muted { " " (c.provider) } }
                                    td.n { (c.input_tokens.map_or("—".to_owned(), count)) }
                                    td.n { (c.output_tokens.map_or("—".to_owned(), count)) }
                                    td.n { (money(c.cost_usd)) }
                                    td { span.badge.(c.usage_source.as_str()) { (c.usage_source.as_str()) } @if c.streamed { " " span.muted { "stream" } } }
                                    td.n { (c.status_code) }
                                    td.n { (c.latency_ms) }
                                }
                            }
                        }
                    }
                }
            }
            section #alerts {
                h2 { "Fired alerts" }
                @if view.alerts.is_empty() { p.empty { "No alert has fired on these budgets." } } @else {
                    table {
                        thead { tr { th { "fired (UTC)" } th { "budget" } th.n { "threshold" } th.n { "spent / limit" } th { "delivery" } th.n { "attempts" } th { "last error" } } }
                        tbody {
                            @for a in &view.alerts {
                                tr.alert data-alert=(a.alert.id) {
                                    td { (time(a.alert.created_at)) }
                                    td { (a.budget) }
                                    td.n { (a.alert.threshold_percent) "%" }
                                    td.n { (money(a.alert.spent_usd)) " / " (money(a.alert.limit_usd)) }
                                    td { span.badge.(a.alert.delivery_status) { (a.alert.delivery_status) }
                                        @if a.alert.webhook_url.is_none() { " " span.muted { "(no webhook)" } } }
                                    td.n { (a.alert.attempts) }
                                    td.muted { (a.alert.last_error.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// A part of a total, as a percentage with one decimal.
fn share(part: Decimal, total: Decimal) -> String {
    if total.is_zero() {
        return "—".to_owned();
    }
    part.checked_mul(Decimal::ONE_HUNDRED)
        .and_then(|x| x.checked_div(total))
        .map_or_else(|| "—".to_owned(), |x| format!("{}%", x.round_dp(1)))
}

/// The bar widths (percent of the limit) of spent and reserved, together at most 100.
pub fn widths(spent: Decimal, reserved: Decimal, limit: Decimal) -> (Decimal, Decimal) {
    if limit <= Decimal::ZERO {
        return (Decimal::ZERO, Decimal::ZERO);
    }
    // A limit of a few billionths of a cent makes the ratio overflow: that is a full bar.
    let pct = |v: Decimal| {
        v.max(Decimal::ZERO)
            .checked_mul(Decimal::ONE_HUNDRED)
            .and_then(|x| x.checked_div(limit))
            .map_or(Decimal::ONE_HUNDRED, |x| x.round_dp(2))
    };
    let spent = pct(spent).min(Decimal::ONE_HUNDRED);
    let reserved = pct(reserved).min(Decimal::ONE_HUNDRED - spent);
    (spent.normalize(), reserved.normalize())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn amounts_read_as_people_write_them() {
        for (v, want) in [
            ("0", "$0.00"),
            ("0.000945", "$0.000945"),
            ("0.00000049", "$0.00"),
            ("0.0000005", "$0.000001"),
            ("0.5", "$0.50"),
            ("0.1234", "$0.1234"),
            ("1", "$1.00"),
            ("1234567.891", "$1,234,567.89"),
            ("-12.5", "-$12.50"),
            ("100", "$100.00"),
        ] {
            assert_eq!(usd(d(v)), want, "{v}");
        }
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(0), "0");
    }

    #[test]
    fn bars_never_pass_the_limit() {
        assert_eq!(widths(d("25"), d("10"), d("100")), (d("25"), d("10")));
        assert_eq!(widths(d("90"), d("30"), d("100")), (d("90"), d("10")));
        assert_eq!(widths(d("150"), d("1"), d("100")), (d("100"), d("0")));
        assert_eq!(widths(d("1"), d("0"), d("3")), (d("33.33"), d("0")));
        let tiny = d("0.0000000000000000000000000001");
        assert_eq!(widths(d("0.8"), d("0"), tiny), (d("100"), d("0")), "no overflow");
    }
}
