"""JupyterHub configuration for a class of the AI security course: one instructor, the students.

Start it from the course folder, with the course's environment active (``course/instructor_guide.md``,
section 2, which ``tests/test_jupyterhub_class.py`` runs as written)::

    jupyterhub -f grader/jupyterhub_config.py

**As committed this is the test and demo set-up**: users log in with a shared password
(``SharedPasswordAuthenticator``) and one OS user plays every hub user
(``SimpleLocalProcessSpawner``, each user with their own home folder under ``$AISEC_HUB_HOMES``).
Nothing separates the users from each other: a student could read another's files. **A real class
uses** a real authenticator (``jupyterhub.auth.PAMAuthenticator`` for the machine's accounts, or an
OAuth one, e.g. ``oauthenticator.GenericOAuthenticator`` with the university's single sign-on) and
a spawner that runs each student as a separate OS user or container (``systemdspawner.SystemdSpawner``,
``dockerspawner.DockerSpawner``, ``kubespawner.KubeSpawner``); nbgrader then takes each student's id
from their OS user, and everything else below stays.

Environment variables (read when the hub starts):

``AISEC_HUB_INSTRUCTORS``, ``AISEC_HUB_STUDENTS``
    comma-separated hub user names (``instructor``; ``alice,bob``). Instructors are hub admins.
``AISEC_HUB_PASSWORD``, ``AISEC_HUB_ADMIN_PASSWORD``
    the students' shared password (8+ characters) and the instructors' (32+ characters, different:
    a student who knows the class password cannot log in as an instructor).
``AISEC_HUB_PORT``, ``AISEC_HUB_API_PORT``, ``AISEC_PROXY_API_PORT``
    the public port (8000), the hub's own port behind the proxy (8081), the proxy's API port (8001).
    Everything listens on 127.0.0.1 only: put a TLS-terminating web server (or ``c.JupyterHub.ssl_*``)
    in front to open it to a class.
``AISEC_HUB_STATE``, ``AISEC_HUB_HOMES``
    the hub's database, cookie secret and proxy pid file (``<workspace>/hub``), and the folder that
    holds each user's home (``<workspace>/hub/home``).
``AISEC_EXCHANGE``
    nbgrader's exchange, the folder every user can write to (``<workspace>/exchange``, the course's
    own default); given to every user's server.
``AISEC_GRADER_PORT``
    the port of the course's grading service, ``aisec-grader`` (10101, loopback; the hub starts it).
``AISEC_HUB_PROXY``
    the ``configurable-http-proxy`` command (``<course>/.venv/node/node_modules/.bin/...``, which
    ``./course.sh test`` installs from npm).

Modes: every student's server has ``grader/modes/student`` in front of ``JUPYTER_CONFIG_PATH``
(nbgrader's instructor tools off, the *Assignments* tab and *Validate* on); an instructor's server
has ``grader/modes/instructor`` when that folder exists (all of nbgrader's tools on) and the course
folder (its ``nbgrader_config.py``) on that path, and opens in the course folder, so that Formgrader
works on the course's gradebook.

The hub also runs the course's grading service, ``aisec-grader`` (``aisec.grading.service``): a
student's ``aisec-grade self LAB --notebook PATH`` is graded there, hidden tests included, without
the hidden tests ever reaching the student's server.
"""

import os
import sys

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

COURSE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKSPACE = os.path.abspath(os.environ.get("AISEC_WORKSPACE") or os.path.join(COURSE, ".workspace"))


def _names(variable, default):
    return [name.strip() for name in os.environ.get(variable, default).split(",") if name.strip()]


INSTRUCTORS = _names("AISEC_HUB_INSTRUCTORS", "instructor")
STUDENTS = _names("AISEC_HUB_STUDENTS", "alice,bob")
STATE = os.path.abspath(os.environ.get("AISEC_HUB_STATE") or os.path.join(WORKSPACE, "hub"))
HOMES = os.path.abspath(os.environ.get("AISEC_HUB_HOMES") or os.path.join(STATE, "home"))
# Same default as grader/nbgrader_config.py, so the instructor's commands and the students agree.
EXCHANGE = os.path.abspath(os.environ.get("AISEC_EXCHANGE") or os.path.join(WORKSPACE, "exchange"))
PROXY = os.environ.get("AISEC_HUB_PROXY") or os.path.join(
    COURSE, ".venv", "node", "node_modules", ".bin", "configurable-http-proxy")
MODES = os.path.join(COURSE, "grader", "modes")

if not os.access(PROXY, os.X_OK):
    raise SystemExit(f"JupyterHub's proxy is not at {PROXY}: `./course.sh test` installs it "
                     "(npm install configurable-http-proxy), or set AISEC_HUB_PROXY to its path.")
if not os.path.isdir(os.path.join(MODES, "student")):
    raise SystemExit(f"{MODES}/student is missing: it turns the instructor tools off for students.")
os.makedirs(STATE, mode=0o700, exist_ok=True)

# -- network: everything on the loopback interface, ports from the environment
c.JupyterHub.bind_url = f"http://127.0.0.1:{int(os.environ.get('AISEC_HUB_PORT', 8000))}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("AISEC_HUB_API_PORT", 8081))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(os.environ.get('AISEC_PROXY_API_PORT', 8001))}"
c.ConfigurableHTTPProxy.command = [PROXY]
c.ConfigurableHTTPProxy.pid_file = os.path.join(STATE, "jupyterhub-proxy.pid")
c.JupyterHub.db_url = "sqlite:///" + os.path.join(STATE, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(STATE, "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = os.path.join(STATE, "jupyterhub.pid")

# -- who may log in. Test/demo choice: shared passwords (DummyAuthenticator's password, deprecated
# since JupyterHub 5.3, became this class). A real class: PAMAuthenticator or an OAuthenticator.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ.get("AISEC_HUB_PASSWORD")
c.SharedPasswordAuthenticator.admin_password = os.environ.get("AISEC_HUB_ADMIN_PASSWORD")
c.Authenticator.allowed_users = set(STUDENTS)
c.Authenticator.admin_users = set(INSTRUCTORS)

# -- where users' servers run. Test/demo choice: one OS user for everyone, a home folder each.
# A real class: SystemdSpawner, DockerSpawner or KubeSpawner, each student a separate OS user.
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(HOMES, "{username}")
# The course's environment serves every user (a real class installs it as the users' image).
c.Spawner.cmd = [os.path.join(os.path.dirname(sys.executable), "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 120  # a busy 2-core machine starts JupyterLab slowly
c.Spawner.start_timeout = 120
if os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]  # containers often run everything as root

c.Spawner.environment = {
    # Kernels and nbgrader's tools come from the course's environment.
    "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", os.defpath),
    "AISEC_EXCHANGE": EXCHANGE,
    "MPLBACKEND": "Agg",
}
for _variable in ("LANG", "LC_ALL", "OMP_NUM_THREADS", "AISEC_GRADEBOOK_URL"):
    if os.environ.get(_variable):
        c.Spawner.environment[_variable] = os.environ[_variable]


# -- the course's grading service (aisec.grading.service): students grade their own work with the hidden
# tests, which stay on the service's side; `aisec-grade self` in a student's server finds it through
# AISEC_GRADING_SERVICE_URL. The hub starts and stops it.
from aisec.grading.service import hub_service  # noqa: E402 - the course's environment runs the hub

_passed_on = {v: os.environ[v] for v in ("OMP_NUM_THREADS", "LANG", "LC_ALL") if os.environ.get(v)}
grader = hub_service(
    port=int(os.environ.get("AISEC_GRADER_PORT", 10101)),
    course_root=COURSE,
    workspace=os.path.join(WORKSPACE, "grading-service"),
    environment={"PATH": c.Spawner.environment["PATH"], "MPLBACKEND": "Agg", **_passed_on},
)
c.JupyterHub.services = [grader.service]
c.JupyterHub.load_roles = list(grader.roles)
c.Spawner.server_token_scopes = grader.server_token_scopes
c.Spawner.environment.update(grader.spawner_environment)


def per_user_mode(spawner):
    """Student or instructor mode, decided by the hub's user name when the server starts."""
    name = spawner.user.name
    # JUPYTER_CONFIG_PATH of the hub (e.g. where the hub-wide nbgrader_config.py lives) is kept behind the mode.
    inherited = [p for p in os.environ.get("JUPYTER_CONFIG_PATH", "").split(os.pathsep) if p]
    if name in INSTRUCTORS:
        mode = os.path.join(MODES, "instructor")
        # The course folder on the configuration path: the instructor's nbgrader (Formgrader included)
        # reads the course's nbgrader_config.py wherever the server started; the server opens there.
        modes = ([mode] if os.path.isdir(mode) else []) + [COURSE]
        spawner.notebook_dir = COURSE
        spawner.environment = {**spawner.environment, "AISEC_WORKSPACE": WORKSPACE, "AISEC_COURSE_ROOT": COURSE}
    else:
        modes = [os.path.join(MODES, "student")]
        # nbgrader takes a student's id from the OS user (a spawner with a user per student needs
        # nothing more); here one OS user plays everyone, so the hub-wide nbgrader_config.py (section 2
        # of the instructor guide) reads the hub's user name from this variable.
        spawner.environment = {**spawner.environment, "AISEC_STUDENT_ID": name}
        home = getattr(spawner, "home_dir", "")  # the demo spawner's; other spawners' users have their own HOME
        if home:
            # Self-grading results stay in the student's home, not in the course's installation.
            spawner.environment["AISEC_WORKSPACE"] = os.path.join(home, ".aisec")
    spawner.environment["JUPYTER_CONFIG_PATH"] = os.pathsep.join(modes + inherited)


c.Spawner.pre_spawn_hook = per_user_mode
