"""SpiffWorkflow doing the pack's class-B approval, persisted, for bench_approvals.py --in-process.

The peer the issue names (SpiffWorkflow, 273 persisted approval instances/s on this machine
kind) measured in the same run, the same process and the same database as Seamline, so its
figure moves with the machine as ours does. Installed by the ``bench`` extra
(``pip install -e '.[dev,bench]'``); without it bench_approvals.py prints the issue's figure.

The process: start → parallel split → user tasks ``finance`` and ``warehouse`` → parallel join
→ end (a countersign of two). One instance, as SpiffWorkflow's own applications persist one:

1. start: a ``BpmnWorkflow`` of the parsed spec (parsed once), engine steps to the two ready
   user tasks, serialised to JSON and inserted — one transaction;
2. each decision: the instance read back and deserialised, the named ready user task completed
   with the decision in its data, engine steps, serialised and updated — one transaction each;
   after the second the workflow is complete and the row says so.

That is three write transactions, as in Seamline's instance and the hand-written baseline; it
keeps less than either (one JSON document: no task rows a work list can query, no audit chain,
no history, no jobs), so the comparison is generous to the peer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

try:
    from lxml import etree
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.util.task import TaskState
except ImportError:  # the bench extra is not installed
    BpmnWorkflow = None

PROCESS = "order_approval"
ROLES = ("finance", "warehouse")
BPMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="approval"
    targetNamespace="http://bpmn.io/schema/bpmn">
 <bpmn:process id="order_approval" isExecutable="true">
  <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="split"/>
  <bpmn:parallelGateway id="split">
   <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing><bpmn:outgoing>f3</bpmn:outgoing>
  </bpmn:parallelGateway>
  <bpmn:sequenceFlow id="f2" sourceRef="split" targetRef="finance"/>
  <bpmn:sequenceFlow id="f3" sourceRef="split" targetRef="warehouse"/>
  <bpmn:userTask id="finance">
   <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
  </bpmn:userTask>
  <bpmn:userTask id="warehouse">
   <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>
  </bpmn:userTask>
  <bpmn:sequenceFlow id="f4" sourceRef="finance" targetRef="join"/>
  <bpmn:sequenceFlow id="f5" sourceRef="warehouse" targetRef="join"/>
  <bpmn:parallelGateway id="join">
   <bpmn:incoming>f4</bpmn:incoming><bpmn:incoming>f5</bpmn:incoming><bpmn:outgoing>f6</bpmn:outgoing>
  </bpmn:parallelGateway>
  <bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="end"/>
  <bpmn:endEvent id="end"><bpmn:incoming>f6</bpmn:incoming></bpmn:endEvent>
 </bpmn:process>
</bpmn:definitions>"""

PEER = sa.MetaData()
INSTANCES = sa.Table(
    "spiff_instances",
    PEER,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("order_id", sa.Integer, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("completed", sa.Boolean, nullable=False),
)


def available() -> bool:
    """Is SpiffWorkflow installed (the ``bench`` extra)?"""
    return BpmnWorkflow is not None


def spiff_runner(engine: sa.Engine) -> Callable[[int, dict[str, str]], None]:
    """Create the peer's table and return ``run(order_id, deciders)``: one persisted instance,
    started, then decided by ``deciders[role]`` for each role in turn."""
    parser = BpmnParser()
    parser.add_bpmn_xml(etree.fromstring(BPMN), filename="approval.bpmn")
    spec = parser.get_spec(PROCESS)
    serializer = BpmnWorkflowSerializer()
    PEER.create_all(engine)
    # locked while it is decided, as two decisions of one instance must not both save
    # (PostgreSQL; SQLite's writers take turns anyway)
    load = (
        sa.select(INSTANCES.c.state).where(INSTANCES.c.id == sa.bindparam("iid")).with_for_update()
    )
    save = (
        INSTANCES.update()
        .where(INSTANCES.c.id == sa.bindparam("iid"))
        .values(state=sa.bindparam("state"), completed=sa.bindparam("done"))
    )

    def start(order_id: int) -> int:
        workflow = BpmnWorkflow(spec)
        workflow.do_engine_steps()
        state = serializer.serialize_json(workflow)
        with engine.begin() as conn:
            row = {"order_id": order_id, "state": state, "completed": False}
            key = conn.execute(INSTANCES.insert(), row).inserted_primary_key
        assert key is not None
        return int(key[0])

    def decide(instance: int, role: str, user: str) -> bool:
        with engine.begin() as conn:
            state = conn.execute(load, {"iid": instance}).scalar_one()
            workflow = serializer.deserialize_json(state)
            ready = workflow.get_tasks(state=TaskState.READY, spec_name=role)
            task: Any = ready[0]
            task.data.update(decision="approve", decided_by=user)
            task.run()
            workflow.do_engine_steps()
            done = workflow.is_completed()
            state = serializer.serialize_json(workflow)
            conn.execute(save, {"iid": instance, "state": state, "done": done})
        return done

    def run(order_id: int, deciders: dict[str, str]) -> None:
        instance = start(order_id)
        done = [decide(instance, role, deciders[role]) for role in ROLES]
        assert done == [False, True], done

    return run
