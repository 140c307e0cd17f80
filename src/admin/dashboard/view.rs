//! What a dashboard page shows, read from the store: one spend-by-day report (the same
//! rollup-backed query as `GET /v1/spend`, so it stays fast however many records there
//! are), the budgets it touches, the newest records and the fired alerts, with the names
//! of what they refer to.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::super::requests::Query;
use super::super::{AdminError, AdminState};
use super::names::Names;
use crate::budget::BudgetStatus;
use crate::store::{Alert, Budget, CostRecord, DayRow, GroupBy, RecordFilter, Scope, SpendRow};

/// The longest range a page draws (days).
pub const MAX_DAYS: i64 = 366;
/// The first day a page may show (no cost record is older).
pub const EARLIEST: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(day) => day,
    None => NaiveDate::MIN,
};
/// The last day a page may show (its end, the next midnight, stays representable).
pub const LATEST_DAY: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 30) {
    Some(day) => day,
    None => NaiveDate::MIN,
};
/// The longest model name a filter takes (tollgate treats longer ones as no model).
pub const MAX_MODEL: usize = 1024;
/// Days shown when the page names no range.
pub const DEFAULT_DAYS: i64 = 30;
/// Groups drawn one by one in the chart; the rest are summed as "other".
pub const CHART_SERIES: usize = 5;
/// Groups listed in the table; the rest are summed in one line.
pub const TABLE_ROWS: usize = 100;
/// Newest records listed.
pub const LATEST: u32 = 25;
/// Newest fired alerts listed.
pub const ALERTS: u32 = 20;
/// Budgets shown (their windows are read one by one).
pub const BUDGETS: usize = 100;

/// The groupings the page offers.
pub const GROUPINGS: [(GroupBy, &str); 5] = [
    (GroupBy::Organization, "organization"),
    (GroupBy::Project, "project"),
    (GroupBy::User, "user"),
    (GroupBy::Model, "model"),
    (GroupBy::Provider, "provider"),
];

/// What the page was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// First day, UTC.
    pub from: NaiveDate,
    /// Last day, inclusive.
    pub to: NaiveDate,
    pub group_by: GroupBy,
    pub organization_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub model: Option<String>,
}

impl Params {
    /// Reads the query; `today` fills the defaults (the last [`DEFAULT_DAYS`] days).
    pub fn read(query: &Query, today: NaiveDate) -> Result<Params, AdminError> {
        let date = |name: &str| -> Result<Option<NaiveDate>, AdminError> {
            let Some(v) = query.text(name)? else { return Ok(None) };
            let day = NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                .map_err(|_| AdminError::field(name, "must be a YYYY-MM-DD date"))?;
            if !(EARLIEST..=LATEST_DAY).contains(&day) {
                return Err(AdminError::field(name, format!("must be between {EARLIEST} and {LATEST_DAY}")));
            }
            Ok(Some(day))
        };
        let to = date("to")?.unwrap_or(today);
        let from = match date("from")? {
            Some(from) => from,
            None => to.checked_sub_signed(TimeDelta::days(DEFAULT_DAYS - 1)).unwrap_or(EARLIEST),
        };
        if from > to {
            return Err(AdminError::field("from", "must not be after to"));
        }
        if (to - from).num_days() >= MAX_DAYS {
            return Err(AdminError::field("from", format!("the range is at most {MAX_DAYS} days")));
        }
        let group_by = match query.text("group_by")? {
            None => GroupBy::Project,
            Some(v) => GROUPINGS.iter().find(|(_, name)| *name == v).map(|(g, _)| *g).ok_or_else(|| {
                AdminError::field("group_by", "must be organization, project, user, model or provider")
            })?,
        };
        Ok(Params {
            from,
            to,
            group_by,
            organization_id: query.uuid("organization_id")?,
            project_id: query.uuid("project_id")?,
            user_id: query.uuid("user_id")?,
            model: match query.text("model")? {
                Some(m) if m.len() > MAX_MODEL => {
                    return Err(AdminError::field("model", format!("at most {MAX_MODEL} bytes")));
                }
                m => m,
            },
        })
    }

    /// The records these parameters select.
    pub fn filter(&self) -> RecordFilter {
        RecordFilter {
            organization_id: self.organization_id,
            project_id: self.project_id,
            user_id: self.user_id,
            model: self.model.clone(),
            from: Some(midnight(self.from)),
            to: Some(midnight(self.to + TimeDelta::days(1))),
            ..RecordFilter::default()
        }
    }

    /// Every day of the range.
    pub fn days(&self) -> Vec<NaiveDate> {
        self.from.iter_days().take_while(|d| *d <= self.to).collect()
    }

    /// The grouping's name as the query spells it.
    pub fn group_name(&self) -> &'static str {
        GROUPINGS.iter().find(|(g, _)| *g == self.group_by).map_or("project", |(_, n)| n)
    }
}

fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// One line of the chart: a group's spend per day of the range.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub per_day: Vec<Decimal>,
}

/// One group of the table.
#[derive(Debug, Clone)]
pub struct GroupLine {
    /// The group's key (an id, a model or provider name); `None` for records without one.
    pub key: Option<String>,
    pub label: String,
    pub sums: SpendRow,
}

/// A budget with the name of what it limits.
#[derive(Debug, Clone)]
pub struct BudgetLine {
    pub status: BudgetStatus,
    pub scope_name: String,
}

/// A fired alert with its budget's description.
#[derive(Debug, Clone)]
pub struct AlertLine {
    pub alert: Alert,
    pub budget: String,
}

/// A record with the names of its project and user.
#[derive(Debug, Clone)]
pub struct RecordLine {
    pub record: CostRecord,
    pub project: String,
    pub user: String,
}

/// Everything a page shows.
#[derive(Debug, Clone)]
pub struct View {
    pub params: Params,
    pub days: Vec<NaiveDate>,
    pub total: SpendRow,
    pub series: Vec<Series>,
    pub groups: Vec<GroupLine>,
    /// Groups beyond [`TABLE_ROWS`], summed (their count and sums).
    pub rest: Option<(usize, SpendRow)>,
    pub budgets: Vec<BudgetLine>,
    /// Budgets beyond [`BUDGETS`], not shown.
    pub more_budgets: usize,
    pub latest: Vec<RecordLine>,
    pub alerts: Vec<AlertLine>,
    /// The name of each filter that is set, for the page's heading.
    pub filters: Vec<(&'static str, String)>,
}

fn zero(group: Option<String>) -> SpendRow {
    SpendRow { group, requests: 0, input_tokens: 0, output_tokens: 0, cost_usd: Decimal::ZERO }
}

fn add(into: &mut SpendRow, row: &SpendRow) {
    into.requests += row.requests;
    into.input_tokens += row.input_tokens;
    into.output_tokens += row.output_tokens;
    into.cost_usd += row.cost_usd;
}

impl View {
    /// Reads what `params` asks for.
    pub async fn load(state: &AdminState, params: Params) -> Result<View, AdminError> {
        let filter = params.filter();
        let days = params.days();
        let rows = state.store.spend_by_day(&filter, params.group_by).await?;
        let mut names = Names::new(state);

        let (total, groups) = fold(&rows);
        let series = series(&rows, &groups, &days, &mut names, params.group_by).await?;
        let mut lines = Vec::with_capacity(groups.len().min(TABLE_ROWS));
        for sums in groups.iter().take(TABLE_ROWS) {
            let label = names.group(params.group_by, sums.group.as_deref()).await?;
            lines.push(GroupLine { key: sums.group.clone(), label, sums: sums.clone() });
        }
        let rest = (groups.len() > TABLE_ROWS).then(|| {
            let mut sum = zero(None);
            groups[TABLE_ROWS..].iter().for_each(|g| add(&mut sum, g));
            (groups.len() - TABLE_ROWS, sum)
        });

        let (chosen, more_budgets) = budgets_of(state, &params).await?;
        let mut budgets = Vec::with_capacity(chosen.len());
        for budget in chosen {
            let scope_name = names.qualified(budget.scope, budget.scope_id).await?;
            budgets.push(BudgetLine { status: state.budgets.status(budget).await?, scope_name });
        }

        let mut latest = Vec::new();
        for record in state.store.latest_cost_records(&filter, LATEST).await? {
            let project = names.of(Scope::Project, record.project_id).await?;
            let user = names.of(Scope::User, record.user_id).await?;
            latest.push(RecordLine { record, project, user });
        }

        let shown: HashMap<Uuid, String> = budgets
            .iter()
            .map(|b| (b.status.budget.id, format!("{} {}", b.status.budget.scope.as_str(), b.scope_name)))
            .collect();
        let configs: Vec<Uuid> = state
            .store
            .list_alert_configs(None)
            .await?
            .into_iter()
            .filter(|c| shown.contains_key(&c.budget_id))
            .map(|c| c.id)
            .collect();
        let alerts = state
            .store
            .latest_alerts(&configs, ALERTS)
            .await?
            .into_iter()
            .filter_map(|alert| {
                shown.get(&alert.budget_id).map(|budget| AlertLine { budget: budget.clone(), alert })
            })
            .collect();

        let mut filters = Vec::new();
        if let Some(id) = params.organization_id {
            filters.push(("organization", names.of(Scope::Organization, id).await?));
        }
        if let Some(id) = params.project_id {
            filters.push(("project", names.of(Scope::Project, id).await?));
        }
        if let Some(id) = params.user_id {
            filters.push(("user", names.of(Scope::User, id).await?));
        }
        if let Some(model) = &params.model {
            filters.push(("model", model.clone()));
        }
        Ok(View {
            params,
            days,
            total,
            series,
            groups: lines,
            rest,
            budgets,
            more_budgets,
            latest,
            alerts,
            filters,
        })
    }
}

/// The budgets the page shows: those of the filtered organization, project and user (all
/// when unfiltered), organizations' first, then projects', then users', at most
/// [`BUDGETS`]; and how many more there are. Only the shown ones get their window read.
async fn budgets_of(state: &AdminState, params: &Params) -> Result<(Vec<Budget>, usize), AdminError> {
    let wanted: Vec<Uuid> =
        [params.organization_id, params.project_id, params.user_id].into_iter().flatten().collect();
    let mut all = super::super::reports::budgets_of(state, &wanted).await?;
    all.sort_by(|a, b| a.scope.cmp(&b.scope).then(a.created_at.cmp(&b.created_at)).then(a.id.cmp(&b.id)));
    let more = all.len().saturating_sub(BUDGETS);
    all.truncate(BUDGETS);
    Ok((all, more))
}

/// The range's total and each group's sums, dearest first.
fn fold(rows: &[DayRow]) -> (SpendRow, Vec<SpendRow>) {
    let mut total = zero(None);
    let mut by_group: BTreeMap<Option<&str>, SpendRow> = BTreeMap::new();
    for DayRow { row, .. } in rows {
        add(&mut total, row);
        add(by_group.entry(row.group.as_deref()).or_insert_with(|| zero(row.group.clone())), row);
    }
    let mut groups: Vec<SpendRow> = by_group.into_values().collect();
    groups.sort_by(|a, b| b.cost_usd.cmp(&a.cost_usd).then_with(|| a.group.cmp(&b.group)));
    (total, groups)
}

/// The chart's lines: the dearest groups one by one, the others summed.
async fn series(
    rows: &[DayRow],
    groups: &[SpendRow],
    days: &[NaiveDate],
    names: &mut Names<'_>,
    group_by: GroupBy,
) -> Result<Vec<Series>, AdminError> {
    let own = if groups.len() <= CHART_SERIES + 1 { groups.len() } else { CHART_SERIES };
    let mut series = Vec::with_capacity(own + 1);
    for g in &groups[..own] {
        let label = names.group(group_by, g.group.as_deref()).await?;
        series.push(Series { label, per_day: vec![Decimal::ZERO; days.len()] });
    }
    let has_other = groups.len() > own;
    if has_other {
        series.push(Series {
            label: format!("{} others", groups.len() - own),
            per_day: vec![Decimal::ZERO; days.len()],
        });
    }
    let first = days.first().copied();
    for DayRow { day, row } in rows {
        let Some(index) = day
            .as_deref()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .zip(first)
            .and_then(|(d, first)| usize::try_from((d - first).num_days()).ok())
            .filter(|i| *i < days.len())
        else {
            continue;
        };
        let line = groups[..own].iter().position(|g| g.group == row.group).or(has_other.then_some(own));
        if let Some(line) = line {
            series[line].per_day[index] += row.cost_usd;
        }
    }
    Ok(series)
}
