//! `roost sql eval`: the IoT SQL playground. Runs the same crate the rules
//! engine runs, with no server: prints exactly the payload an action would
//! receive, or a rendered substitution template.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The rule's SQL, e.g. "SELECT * FROM 'abcde-12345/+/audit'".
    #[arg(long)]
    sql: String,
    /// The topic the message arrived on.
    #[arg(long)]
    topic: String,
    /// The message payload (text).
    #[arg(long, conflicts_with = "payload_file")]
    payload: Option<String>,
    /// Read the payload from a file (any bytes).
    #[arg(long)]
    payload_file: Option<PathBuf>,
    /// The publisher's client id, for clientid().
    #[arg(long)]
    client_id: Option<String>,
    /// The publisher's principal, for principal().
    #[arg(long)]
    principal: Option<String>,
    /// The account id accountid() returns (12 digits); by default the
    /// account `roost serve` plays.
    #[arg(long, default_value = crate::config::DEFAULT_ACCOUNT)]
    account: String,
    /// 2015-10-08 (default) or 2016-03-23.
    #[arg(long, default_value = "2015-10-08")]
    sql_version: String,
    /// Render this substitution template (e.g. '${topic()}/${timestamp()}')
    /// instead of printing the SELECT output.
    #[arg(long)]
    template: Option<String>,
}

/// Exit codes: 0 printed, 1 filtered out by WHERE, 2 an error.
pub fn eval(args: EvalArgs) -> ExitCode {
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("roost sql eval: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: EvalArgs) -> Result<bool, String> {
    let version: roost_sql::SqlVersion = args.sql_version.parse().map_err(|_| {
        format!(
            "--sql-version '{}' is not valid: use 2015-10-08 or 2016-03-23",
            args.sql_version
        )
    })?;
    if !crate::config::is_account_id(&args.account) {
        return Err(format!(
            "--account '{}' is not valid: an account id is 12 digits",
            args.account
        ));
    }
    let payload = match (&args.payload, &args.payload_file) {
        (Some(p), _) => p.clone().into_bytes(),
        (None, Some(path)) => {
            std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?
        }
        (None, None) => return Err("give the message with --payload or --payload-file".into()),
    };
    let statement = roost_sql::parse(&args.sql, version).map_err(|e| format!("SQL: {e}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let trace_id = uuid_like();
    let ctx = roost_sql::Context {
        topic: &args.topic,
        client_id: args.client_id.as_deref(),
        principal: args.principal.as_deref(),
        account_id: Some(&args.account),
        timestamp_ms: now,
        trace_id: Some(&trace_id),
        ..Default::default()
    };
    let mut stdout = std::io::stdout().lock();
    if let Some(text) = &args.template {
        let template =
            roost_sql::parse_template(text, version).map_err(|e| format!("template: {e}"))?;
        let rendered = template
            .render(&payload, &ctx)
            .map_err(|e| format!("template: {e}"))?;
        writeln!(stdout, "{rendered}").map_err(|e| e.to_string())?;
        return Ok(true);
    }
    if !statement.matches_topic(&args.topic) {
        eprintln!(
            "filtered out: topic '{}' does not match FROM '{}'",
            args.topic,
            statement.from_topic()
        );
        return Ok(false);
    }
    match statement
        .evaluate(&payload, &ctx)
        .map_err(|e| format!("evaluation: {e}"))?
    {
        None => {
            eprintln!("filtered out: the WHERE clause is not true for this message");
            Ok(false)
        }
        Some(output) => {
            stdout
                .write_all(&output.to_bytes())
                .map_err(|e| e.to_string())?;
            if matches!(output, roost_sql::Output::Json(_)) {
                writeln!(stdout).map_err(|e| e.to_string())?;
            }
            Ok(true)
        }
    }
}

fn uuid_like() -> String {
    // A trace id for traceid(); the CLI has no request to trace.
    format!(
        "{:032x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}
