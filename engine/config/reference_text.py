"""Hand-written parts of docs/yaml-reference.md: one example per field type and step kind,
notes added to some keys' descriptions, and sections on behaviour the schemas cannot say
(webhook signing, what `call` sends, locking while approving, dashboard windows).

Every fact here was read from the code named beside it; ``schema_docs`` puts it in place and
tests/test_docs_coverage.py checks that every field type and step kind has its example.
"""

from __future__ import annotations

# field type → a field written with it (under `fields:` of forms/NAME.yaml)
FIELD_EXAMPLES: dict[str, str] = {
    "text": """\
customer_po:
  type: text
  label: Customer PO
  max_length: 40
  pattern: "^PO-[0-9]+$"
  pattern_message: write it as PO- and digits""",
    "long_text": """\
remarks:
  type: long_text
  label: Remarks
  max_length: 2000""",
    "integer": """\
quantity:
  type: integer
  label: Quantity
  required: true
  min: 1
  max: 100000""",
    "decimal": """\
weight_kg:
  type: decimal
  label: Weight (kg)
  scale: 3
  min: 0.001""",
    "money": """\
unit_price:
  type: money
  label: Unit price
  currency: CNY
  min: 0""",
    "boolean": """\
export:
  type: boolean
  label: Export order
  default: false""",
    "date": """\
desired_date:
  type: date
  label: Desired delivery date
  required: true
  default: add_workdays(today(), 10)
  min: "2026-01-01"
  compare:
    with: promised_date
    highlight: promised_date > desired_date
    message: later than the customer wants""",
    "datetime": """\
picked_up_at:
  type: datetime
  label: Picked up at
  default: now()""",
    "select": """\
order_type:
  type: select
  label: Order type
  options:
    - normal
    - {value: rush, label: Rush order}
  default: normal""",
    "multiselect": """\
certificates:
  type: multiselect
  label: Certificates
  options: [CE, RoHS, UL]
  max_items: 3""",
    "phone": """\
phone:
  type: phone
  label: Mobile""",
    "email": """\
email:
  type: email
  label: Email""",
    "ref": """\
customer:
  type: ref
  label: Customer
  form: customer
  required: true""",
    "files": """\
drawings:
  type: files
  label: Drawings
  accept: [.pdf, .dwg]
  max_size_mb: 20
  max_files: 5""",
    "computed": """\
amount:
  type: computed
  label: Amount
  expr: quantity * unit_price
  result: money""",
    "autonumber": """\
order_number:
  type: autonumber
  label: Order number
  format: SO-{yyyy}{mm}-{seq:5}""",
    "table": """\
notes:
  type: table
  label: Communication log
  append_only: true
  fields:
    said: {type: long_text, label: What was said, required: true}
    at: {type: datetime, label: When, default: now()}""",
}

# step kind → an automation step (under `steps:` of flows/NAME.yaml)
STEP_EXAMPLES: dict[str, str] = {
    "call": """\
- id: stock
  call:
    connector: wms
    operation: get_stock          # GET /api/stock/{sku}
    with: {sku: product.sku}      # fills {sku}; other values: query (GET) or JSON body
    pending_state: waiting_for_stock
    keep: {on_hand: on_hand, incoming: incoming}""",
    "if": """\
- if: amount > 500000
  then:
    - transition: send_to_director
  else:
    - transition: send_to_manager""",
    "set": """\
- set:
    promised_date: available_to_promise(quantity, steps.stock, product.lead_days)""",
    "create": """\
- create:
    form: delivery
    values: {order: id, quantity: quantity}""",
    "notify": """\
- notify:
    via: dingtalk
    to: [{role: sales_manager}, {field: owner}]
    template: order_late.md
    todo: true        # also an in-app to-do in each recipient's worklist (/tasks)""",
    "transition": """\
- transition: confirm""",
    "wait": """\
- wait: {workdays: 2}""",
}

# (kind, dotted key) → a sentence added to the key's description
KEY_NOTES: dict[tuple[str, str], str] = {
    ("app", "connectors.NAME.token_env"): (
        "webhook: the signing secret of `X-Seamline-Signature` (see Webhook signing); http: "
        "sent as `Authorization: Bearer …`; dingtalk: the robot's signing secret"
    ),
    ("app", "calendar"): (
        "`validate` warns when the calendar ends within 6 months of today "
        "(`calendar-ends-soon`): past its end, workdays are Monday to Friday"
    ),
    ("approval", "if_record_changes"): "lock is the default; see Editing while approving",
    ("dashboard", "kpis.NAME.window"): (
        "counted on the record's creation time (duration measures: on the time of `from`), "
        "in whole days of the app's time zone; see Which time a window counts"
    ),
}

# step kind → a sentence added to the description of one of its keys
STEP_KEY_NOTES: dict[tuple[str, str], str] = {
    ("call", "call.with"): (
        "the request: values named in the operation's path fill its `{name}` placeholders; "
        "the others are the JSON body of POST/PUT/PATCH, or the query string of GET/DELETE"
    ),
}

# kind → Markdown sections appended after that kind's tables
SECTIONS: dict[str, str] = {
    "app": """\
### Webhook signing

A `type: webhook` connector POSTs a JSON body (`title`, `text`, `markdown`, `todo`,
`recipients`, `url` and the template's extra values) to the URL in `url_env`, with the headers
`Idempotency-Key` (the same for every attempt of one message: de-duplicate on it) and
`X-Seamline-Timestamp` (Unix seconds). With `token_env` set it also sends
`X-Seamline-Signature: sha256=` + the hex HMAC-SHA256, keyed with the secret, of
`{X-Seamline-Timestamp}.{raw body}`. A receiver recomputes it over the raw bytes, compares
in constant time and should refuse old timestamps (engine/outbox/connectors/webhook.py).
DingTalk robots are signed DingTalk's way instead (`timestamp` and `sign` in the URL).
""",
    "flow": """\
### What `call` sends and keeps

A `call` step runs the named `operation` of an `http` connector. Its `with:` values are
evaluated on the record; the ones named in the operation's `path` fill its `{name}` placeholders
(URL-encoded; a blank one is an error), and the rest are the **request body**: a JSON object for
POST, PUT and PATCH, the query string for GET and DELETE. Every request carries
`Idempotency-Key: run:<run id>:<step>` (the same on each retry) and, with `token_env`,
`Authorization: Bearer …`. The answer must be JSON; `keep:` picks values from it by dotted paths
(without `keep` the whole answer is kept) as `steps.<id>.<name>` for later steps. While the
system fails, times out or answers 5xx, 408, 425 or 429, the record waits in `pending_state`
and the call is retried; any other 4xx fails the run (engine/flows/runner.py,
engine/outbox/connectors/http_api.py).
""",
    "approval": """\
### Editing while approving (`if_record_changes`)

While an approval is open, a change to the record (its fields or child rows) is handled by
`if_record_changes`:

- `lock` (the default): a person's edit is refused — HTTP 409 with "the record is being
  approved and cannot be changed; ask an approver to return it for changes" — and rolled back.
  Changes made by the system (automations, `call` results, approval outcomes) still go through,
  and rows added to an `append_only` table (a communication log) are always accepted.
- `restart`: the change is saved, the open approval is closed as *restarted* and a new one
  starts from the first step with the same submitter.

A transition to a state that does not start the approval cancels it (engine/flows/approvals/
service.py).
""",
    "dashboard": """\
### Which time a window counts

`window` is counted in whole days of the app's `timezone` and always ends now: `today` starts
at local midnight, `7d`/`30d` at local midnight 6/29 days before today, `this_month` on the 1st,
`all` has no start. A record measure (count, sum, avg, rate, distinct_count, per_record) counts
the records **created** in the window (`created_at`), whatever state they reached since. A
duration measure (median_hours, percentile_hours, on_time_rate) counts the spans whose **start**
(`from`) lies in the window; a `field` endpoint compares the field's date with the window's
local days. Trend buckets use the same times (engine/model/periods.py,
engine/dashboards/compile_kpi.py, engine/dashboards/spans.py).
""",
}
