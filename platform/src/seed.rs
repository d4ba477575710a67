//! Demo data: a customer-support scenario with realistic inputs, personas and
//! criteria, so a new user (and every end-to-end test) has something to pull.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

use crate::auth::{insert_key, Scope};
use crate::store::{dberr, Demo, LOCAL_USER_EMAIL};
use crate::util::{new_id, now_ms};
use crate::PlatformError;

/// Name of the demo project.
const DEMO_PROJECT: &str = "Demo Project";
/// Name of the demo scenario (the CLI's examples use it).
const DEMO_SCENARIO: &str = "support-bot";
const GOAL: &str = "Resolve customer-support requests for an online store accurately, \
    politely and within policy, escalating to a human when needed.";

/// (name, description) of each persona.
const PERSONAS: [(&str, &str); 3] = [
    (
        "Frustrated customer",
        "Has already waited too long, writes in short angry sentences and wants a fix now.",
    ),
    (
        "Busy professional",
        "Polite but terse; wants the shortest path to a resolution and exact next steps.",
    ),
    (
        "First-time shopper",
        "Unsure how the store works, asks follow-up questions and needs plain language.",
    ),
];

/// (name, type, description) of each criterion.
const CRITERIA: [(&str, &str, &str); 4] = [
    (
        "Resolves the request",
        "llm_judge",
        "The reply solves the customer's problem or gives a concrete next step.",
    ),
    (
        "Empathetic tone",
        "llm_judge",
        "The reply acknowledges the customer's situation without being patronising.",
    ),
    (
        "Follows policy",
        "rule",
        "Refunds, cancellations and account changes follow the published store policy.",
    ),
    (
        "No invented facts",
        "llm_judge",
        "The reply does not make up order details, prices, dates or policies.",
    ),
];

/// (message, category, difficulty, persona index) of each input.
const INPUTS: [(&str, &str, &str, usize); 10] = [
    (
        "I was charged twice for order #48213. Fix this now.",
        "billing",
        "medium",
        0,
    ),
    (
        "How do I reset my password? The reset email never arrives.",
        "account",
        "easy",
        2,
    ),
    (
        "My package was due Monday and tracking hasn't moved in 5 days.",
        "shipping",
        "medium",
        0,
    ),
    (
        "I'd like a refund for the blender I returned two weeks ago.",
        "refund",
        "medium",
        1,
    ),
    (
        "Please cancel my subscription before the next renewal date.",
        "subscription",
        "easy",
        1,
    ),
    (
        "What's the difference between the Plus and Pro plans? Can I switch mid-month?",
        "plans",
        "easy",
        2,
    ),
    (
        "I need a VAT invoice for my last three orders for my company.",
        "billing",
        "hard",
        1,
    ),
    (
        "My account is locked after too many login attempts and I have an order pending.",
        "account",
        "hard",
        0,
    ),
    (
        "The mug arrived broken. Do I have to send it back?",
        "returns",
        "medium",
        2,
    ),
    (
        "Delete all my personal data under GDPR and confirm in writing.",
        "privacy",
        "hard",
        1,
    ),
];

/// Seeds the demo project for the local user (reusing project and scenario when
/// they exist) and returns it with a new `read-write` service-account key.
pub(crate) fn demo(conn: &Connection, user_id: &str, inputs: usize) -> Result<Demo, PlatformError> {
    let err = dberr("seeding the demo");
    let tx = conn.unchecked_transaction().map_err(&err)?;
    let project_id: Option<String> = tx
        .query_row(
            "SELECT p.id FROM projects p JOIN workspaces w ON w.id = p.workspace_id
             WHERE w.owner_id = ?1 AND p.name = ?2",
            params![user_id, DEMO_PROJECT],
            |r| r.get(0),
        )
        .optional()
        .map_err(&err)?;
    let project_id = match project_id {
        Some(id) => id,
        None => {
            let workspace_id: String = tx
                .query_row(
                    "SELECT id FROM workspaces WHERE owner_id = ?1 ORDER BY created_ms LIMIT 1",
                    [user_id],
                    |r| r.get(0),
                )
                .map_err(&err)?;
            let id = new_id();
            tx.execute(
                "INSERT INTO projects (id, workspace_id, name, created_ms) VALUES (?1, ?2, ?3, ?4)",
                params![id, workspace_id, DEMO_PROJECT, now_ms()],
            )
            .map_err(&err)?;
            id
        }
    };
    let existing: Option<(String, String, i64)> = tx
        .query_row(
            "SELECT s.id, b.id, b.version FROM scenarios s
             JOIN bundle_versions b ON b.scenario_id = s.id AND b.status = 'published'
             WHERE s.project_id = ?1 AND s.name = ?2
             ORDER BY b.version DESC LIMIT 1",
            params![project_id, DEMO_SCENARIO],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(&err)?;
    let (scenario_id, bundle_version_id, bundle_version) = match existing {
        Some(found) => found,
        None => scenario(&tx, &project_id, DEMO_SCENARIO, inputs).map_err(&err)?,
    };
    let (_, key) = insert_key(
        &tx,
        &project_id,
        "demo key",
        "service-account",
        Scope::ReadWrite,
        None,
    )
    .map_err(|e| PlatformError::Invalid { message: e.message })?;
    tx.commit().map_err(&err)?;
    Ok(Demo {
        user_id: user_id.to_owned(),
        user_email: LOCAL_USER_EMAIL.to_owned(),
        project_id,
        project_name: DEMO_PROJECT.to_owned(),
        scenario_id,
        scenario_name: DEMO_SCENARIO.to_owned(),
        bundle_version_id,
        bundle_version,
        key,
    })
}

/// Creates a scenario with one published bundle of `inputs` inputs (the demo
/// inputs, repeated with a numbered variant when more are asked for), three
/// personas and four criteria. Returns (scenario id, bundle id, version).
pub(crate) fn scenario(
    conn: &Connection,
    project_id: &str,
    name: &str,
    inputs: usize,
) -> rusqlite::Result<(String, String, i64)> {
    let now = now_ms();
    let scenario_id: String = match conn
        .query_row(
            "SELECT id FROM scenarios WHERE project_id = ?1 AND name = ?2",
            params![project_id, name],
            |r| r.get(0),
        )
        .optional()?
    {
        Some(id) => id,
        None => {
            let id = new_id();
            conn.execute(
                "INSERT INTO scenarios (id, project_id, name, goal, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, project_id, name, GOAL, now],
            )?;
            id
        }
    };
    let version: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM bundle_versions WHERE scenario_id = ?1",
        [&scenario_id],
        |r| r.get(0),
    )?;
    let bundle_id = new_id();
    let input_set_id = new_id();
    conn.execute(
        "INSERT INTO bundle_versions (id, project_id, scenario_id, version, status, input_set_id, created_ms)
         VALUES (?1, ?2, ?3, ?4, 'published', ?5, ?6)",
        params![bundle_id, project_id, scenario_id, version, input_set_id, now],
    )?;
    let mut persona_ids = Vec::with_capacity(PERSONAS.len());
    for (pos, (pname, desc)) in PERSONAS.iter().enumerate() {
        let id = new_id();
        conn.execute(
            "INSERT INTO personas (id, bundle_version_id, position, name, description) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, bundle_id, pos as i64, pname, desc],
        )?;
        persona_ids.push(id);
    }
    for (pos, (cname, ctype, desc)) in CRITERIA.iter().enumerate() {
        conn.execute(
            "INSERT INTO criteria (id, bundle_version_id, position, name, type, description)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![new_id(), bundle_id, pos as i64, cname, ctype, desc],
        )?;
    }
    let mut insert = conn.prepare(
        "INSERT INTO input_items (id, input_set_id, position, persona_id, messages, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for i in 0..inputs {
        let (text, category, difficulty, persona) = INPUTS[i % INPUTS.len()];
        let round = i / INPUTS.len();
        let content = if round == 0 {
            text.to_owned()
        } else {
            format!("{text} (follow-up {round})")
        };
        let messages = json!([{"role": "user", "content": content}]);
        let metadata = json!({"category": category, "difficulty": difficulty});
        insert.execute(params![
            new_id(),
            input_set_id,
            i as i64,
            persona_ids[persona],
            messages.to_string(),
            metadata.to_string()
        ])?;
    }
    Ok((scenario_id, bundle_id, version))
}
