// The demo page's script: submit a report with respond-async/client, show its progress, cancel it, list recent jobs.
// Plain browser JavaScript, no build step: the server serves the client library as an ES module at /client.js.
import { cancel, JobCanceledError, JobFailedError, submit, waitFor } from '/client.js';

const $ = (id) => document.getElementById(id);
const userInput = $('user');
const form = $('start');
const progress = $('progress');
const percent = $('percent');
const statusLine = $('status');
const cancelButton = $('cancel');
const resultBox = $('result');
const resultJson = $('result-json');
const errorLine = $('error');
const jobsBody = document.querySelector('#jobs tbody');
const jobsEmpty = $('jobs-empty');

/** The job this page follows: { statusUrl, user, controller }, or null. */
let current = null;
/** The last list of recent jobs, by id, so that live progress can update its row without a request. */
let recent = [];
let listRequest = 0;

const user = () => userInput.value.trim() || 'demo';
const asUser = (name) => ({ 'x-user': name });

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const data = new FormData(form);
  start({ steps: Number(data.get('steps')), stepMs: Number(data.get('stepMs')), fail: data.get('fail') === 'on' });
});

cancelButton.addEventListener('click', async () => {
  if (!current) return;
  const { statusUrl, user: owner } = current;
  cancelButton.disabled = true;
  statusLine.textContent = 'Canceling…';
  try {
    await cancel(statusUrl, { headers: asUser(owner) });
  } catch (error) {
    // 409: it finished meanwhile; waitFor reports how.
    if (error.status !== 409) showError(error);
  }
  refreshJobs();
});

userInput.addEventListener('change', () => refreshJobs());

async function start(body) {
  current?.controller.abort(); // stop following the previous job; it goes on running on the server
  const controller = new AbortController();
  const owner = user();
  current = { statusUrl: null, user: owner, controller };
  reset('Submitting…');
  try {
    const response = await submit('/reports', { body, headers: asUser(owner), signal: controller.signal });
    current.statusUrl = new URL(response.headers.get('location'), location.href).href;
    cancelButton.disabled = false;
    refreshJobs();
    const result = await waitFor(response, {
      headers: asUser(owner),
      signal: controller.signal,
      onProgress: (doc) => {
        showDocument(doc);
        updateRow(doc);
      },
    });
    statusLine.textContent = 'complete';
    resultJson.textContent = JSON.stringify(result, null, 2);
    resultBox.hidden = false;
  } catch (error) {
    if (controller.signal.aborted) return; // another job took over the page
    if (error instanceof JobCanceledError) statusLine.textContent = 'canceled';
    else if (error instanceof JobFailedError) {
      statusLine.textContent = 'failed';
      showError(error);
    } else showError(error);
  } finally {
    if (current?.controller === controller) {
      current = null;
      cancelButton.disabled = true;
      refreshJobs();
    }
  }
}

function reset(text) {
  setProgress(0);
  statusLine.textContent = text;
  resultBox.hidden = true;
  resultJson.textContent = '';
  errorLine.hidden = true;
  errorLine.textContent = '';
  cancelButton.disabled = true;
}

function setProgress(value) {
  const rounded = Math.round(value);
  progress.value = rounded;
  percent.textContent = `${rounded} %`;
}

function showDocument(doc) {
  if (typeof doc.progress === 'number') setProgress(doc.progress);
  statusLine.textContent = doc.message ? `${doc.status}: ${doc.message}` : doc.status;
}

function showError(error) {
  errorLine.textContent = error instanceof Error ? error.message : String(error);
  errorLine.hidden = false;
}

/** GET /jobs as the current user: that user's recent jobs, newest first. */
async function refreshJobs() {
  const owner = user();
  const request = ++listRequest;
  try {
    const res = await fetch('/jobs', { headers: { ...asUser(owner), accept: 'application/json' }, cache: 'no-store' });
    if (!res.ok) throw new Error(`GET /jobs answered ${res.status}`);
    const { jobs } = await res.json();
    if (request !== listRequest) return; // a newer refresh is on its way
    $('jobs-user').textContent = owner;
    recent = jobs;
    renderJobs();
  } catch (error) {
    if (request !== listRequest) return;
    jobsEmpty.textContent = `Could not load the jobs: ${error.message}`;
    jobsEmpty.hidden = false;
  }
}

function updateRow(doc) {
  const index = recent.findIndex((job) => job.jobId === doc.jobId);
  if (index === -1) return;
  recent[index] = doc;
  renderJobs();
}

function renderJobs() {
  jobsBody.replaceChildren(
    ...recent.map((job) => {
      const row = document.createElement('tr');
      row.dataset.jobId = job.jobId;
      const id = document.createElement('code');
      id.textContent = job.jobId.slice(0, 8);
      id.title = job.jobId;
      const status = cell(job.status);
      status.dataset.status = job.status;
      row.append(
        cell(id),
        status,
        cell(typeof job.progress === 'number' ? `${Math.round(job.progress)} %` : '–', 'num'),
        cell(new Date(job.createdAt).toLocaleTimeString()),
      );
      return row;
    }),
  );
  jobsEmpty.textContent = 'No jobs yet.';
  jobsEmpty.hidden = recent.length > 0;
}

function cell(content, className) {
  const td = document.createElement('td');
  if (className) td.className = className;
  td.append(content);
  return td;
}

refreshJobs();
