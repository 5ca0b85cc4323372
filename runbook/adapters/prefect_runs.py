"""Prefect's run history (client API, paginated): finished task runs as run records."""

from __future__ import annotations

import re
from datetime import datetime
from uuid import UUID

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterStartTime,
    TaskRunFilterState,
    TaskRunFilterStateType,
    TaskRunFilterTags,
)
from prefect.client.schemas.objects import StateType, TaskRun
from prefect.client.schemas.sorting import ArtifactSort, TaskRunSort
from prefect.exceptions import ObjectNotFound

from runbook.errors import TransientError
from runbook.incidents import TimelineEntry
from runbook.ops.deploys import PipelineRun, RunRecordOfReport, extract_record
from runbook.ops.health import RunKind, RunRecord

PAGE_SIZE = 200
FINISHED = [StateType.COMPLETED, StateType.FAILED, StateType.CRASHED]


def finished_task_runs(tags: dict[str, RunKind], flow_names: list[str], since: datetime
                       ) -> list[RunRecord]:
    """Every finished run of the tasks carrying each tag (``runbook.names.BUILD_TAG``) inside
    the named flows started after ``since``: the tag, not the task name, says what a task
    is, so a renamed or added task counts without a policy change."""
    try:
        with get_client(sync_client=True) as client:
            return [record for tag, kind in tags.items()
                    for record in task_run_records(_pages(client, tag, flow_names, since), kind)]
    except httpx.TransportError as exc:
        raise TransientError(f"Prefect API unreachable: {exc}") from exc


def task_run_records(runs: list[TaskRun], kind: RunKind) -> list[RunRecord]:
    """Finished task runs as health records (pure): completed is a success; a run that
    never started has nothing to count."""
    return [RunRecord(kind=kind, ok=run.state_type is StateType.COMPLETED,
                      started_at=run.start_time, duration_s=run.total_run_time.total_seconds())
            for run in runs if run.start_time is not None]


def _pages(client: object, tag: str, flow_names: list[str], since: datetime
           ) -> list[TaskRun]:
    runs: list[TaskRun] = []
    while True:
        page = client.read_task_runs(  # type: ignore[attr-defined]
            flow_filter=FlowFilter(name=FlowFilterName(any_=flow_names)),
            task_run_filter=TaskRunFilter(
                tags=TaskRunFilterTags(all_=[tag]),
                start_time=TaskRunFilterStartTime(after_=since),
                state=TaskRunFilterState(type=TaskRunFilterStateType(any_=FINISHED))),
            sort=TaskRunSort.EXPECTED_START_TIME_DESC, limit=PAGE_SIZE, offset=len(runs))
        runs.extend(page)
        if len(page) < PAGE_SIZE:
            return runs


FLOW_RUN_ID = re.compile(r"/flow-run/([0-9a-f-]{36})")


def flow_run_records(link: str | None) -> list[TimelineEntry]:
    """The Prefect run an incident links to (its UI URL), as timeline lines: the flow run's
    state changes and each task run's end. None linked, or a link that is no flow run: no
    lines."""
    found = FLOW_RUN_ID.search(link or "")
    if found is None:
        return []
    run_id = UUID(found.group(1))
    try:
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(run_id)
            states = client.read_flow_run_states(run_id)
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
                limit=PAGE_SIZE)
    except ObjectNotFound:
        return []
    except httpx.TransportError as exc:
        raise TransientError(f"Prefect API unreachable: {exc}") from exc
    lines = [TimelineEntry(at=state.timestamp, source="run",
                           text=f"flow run {flow_run.name}: {state.name}"
                                + (f" ({state.message})" if state.message else ""))
             for state in states if state.timestamp is not None]
    lines += [TimelineEntry(at=task.end_time, source="run",
                            text=f"task {task.name}: {task.state_name}")
              for task in tasks if task.end_time is not None]
    return sorted(lines, key=lambda line: line.at)


REPORT_KEY_PREFIX = "run-report-"


def pipeline_runs(flow_names: list[str], since: datetime) -> list[PipelineRun]:
    """Every run of the named flows since ``since`` that published a run report with its
    record (runbook/ops/deploys.py), newest first, with the run's ``service_dir``."""
    try:
        with get_client(sync_client=True) as client:
            flows = client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=flow_names)))
            flow_ids = {f.id for f in flows}
            found = _report_artifacts(client, since)
            run_ids = list({run_id for run_id, _ in found})
            runs = {}
            for start in range(0, len(run_ids), PAGE_SIZE):
                batch = run_ids[start:start + PAGE_SIZE]
                for run in client.read_flow_runs(
                        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=batch)),
                        limit=PAGE_SIZE):
                    runs[run.id] = run
    except httpx.TransportError as exc:
        raise TransientError(f"Prefect API unreachable: {exc}") from exc
    result = []
    for run_id, record in found:
        run = runs.get(run_id)
        if run is None or run.flow_id not in flow_ids:
            continue
        service_dir = run.parameters.get("service_dir")
        result.append(PipelineRun(record=record,
                                  service_dir=str(service_dir) if service_dir else None))
    return result


def _report_artifacts(client: object, since: datetime) -> list[tuple[UUID, RunRecordOfReport]]:
    found: list[tuple[UUID, RunRecordOfReport]] = []
    offset = 0
    while True:
        page = client.read_artifacts(  # type: ignore[attr-defined]
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=REPORT_KEY_PREFIX)),
            sort=ArtifactSort.CREATED_DESC, limit=PAGE_SIZE, offset=offset)
        offset += len(page)
        for artifact in page:
            if artifact.created is not None and artifact.created < since:
                return found
            record = extract_record(str(artifact.data or ""))
            if record is not None and artifact.flow_run_id is not None:
                found.append((artifact.flow_run_id, record))
        if len(page) < PAGE_SIZE:
            return found
