"""The container setup names only things that exist in the project.

No Docker engine runs here, and no image can be pulled: these tests read Dockerfile, .dockerignore,
docker-compose.yml and deploy/nginx.conf and check every command, module, file and environment
variable they name against the project itself (management commands, the Celery app, the WSGI
application, requirements.txt, the settings), and the shape of the scale-out (web replicas behind one
proxy port, two workers, one beat). Nothing here starts a container. None of them needs the database.
"""

import ast
import functools
import importlib
import json
import re
import shlex
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points, packages_distributions
from importlib.util import find_spec
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import yaml
from celery import Celery
from celery.app.utils import find_app
from celery.bin.celery import celery as celery_cli
from django.core.management import get_commands
from gunicorn.config import Config as GunicornConfig
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"

REQUIRED_SERVICES = {"db", "redis", "migrate", "web", "proxy", "worker", "beat"}
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
PROJECT_SERVICES = {"migrate", "web", "worker", "beat"}  # Must be built from this project's Dockerfile.
PYTHONS = {"python", "python3", f"python3.{sys.version_info.minor}"}
SHELLS = {"sh", "bash", "dash"}
# Read by Django, manage.py, config.wsgi and config.celery rather than by the settings.
READ_OUTSIDE_SETTINGS = {"DJANGO_SETTINGS_MODULE"}
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)
CELERY_OPTIONS_WITH_VALUE = {"-A", "--app", "-b", "--broker", "--result-backend", "--loader", "--config", "--workdir"}


# --- Reading the files ----------------------------------------------------------------------------


@functools.cache
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict]:
    return compose()["services"]


def built_services() -> dict[str, dict]:
    return {name: service for name, service in services().items() if service.get("build")}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    value: str


@functools.cache
def dockerfile() -> tuple[Instruction, ...]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    instructions, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, value = (pending + line).strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), value.strip()))
        pending = ""
    return tuple(instructions)


def dockerfile_values(keyword: str) -> list[str]:
    return [instruction.value for instruction in dockerfile() if instruction.keyword == keyword]


def dockerfile_argv(value: str) -> list[str]:
    """An instruction's command: exec form (a JSON list) as is, shell form as `/bin/sh -c value`."""
    if value.startswith("["):
        return [str(part) for part in json.loads(value)]
    return ["/bin/sh", "-c", value]


def dockerfile_env() -> dict[str, str]:
    variables: dict[str, str] = {}
    for value in dockerfile_values("ENV"):
        words = shlex.split(value)
        if "=" in words[0]:
            variables.update(word.split("=", 1) for word in words)
        else:  # The legacy `ENV NAME value` form.
            variables[words[0]] = " ".join(words[1:])
    return variables


def image_command() -> list[str]:
    """What a container of the image runs when compose overrides nothing: ENTRYPOINT + CMD."""
    entrypoints, cmds = dockerfile_values("ENTRYPOINT"), dockerfile_values("CMD")
    return (dockerfile_argv(entrypoints[-1]) if entrypoints else []) + (dockerfile_argv(cmds[-1]) if cmds else [])


def as_argv(value: str | list | None) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def service_commands(service: dict) -> list[list[str]]:
    """Every command a project container runs: its main process and its healthcheck."""
    if "entrypoint" in service:  # Compose drops the image's CMD when it overrides the ENTRYPOINT.
        main = as_argv(service["entrypoint"]) + as_argv(service.get("command"))
    elif "command" in service:
        entrypoints = dockerfile_values("ENTRYPOINT")
        main = (dockerfile_argv(entrypoints[-1]) if entrypoints else []) + as_argv(service["command"])
    else:
        main = image_command()
    commands = [main]
    test = service.get("healthcheck", {}).get("test")
    test = ["CMD-SHELL", test] if isinstance(test, str) else as_argv(test)  # A string runs in a shell.
    if test[:1] == ["CMD"]:
        commands.append(test[1:])
    elif test[:1] == ["CMD-SHELL"]:
        commands.append(["/bin/sh", "-c", " ".join(test[1:])])
    return commands


def interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` as its default, `${NAME:?error}` as a placeholder."""

    def resolve(match: re.Match) -> str:
        name, operator, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        return rest if operator.endswith("-") else f"<{name} from the host>"

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}", resolve, str(value))


def service_environment(service: dict) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) if "=" in item else (item, "") for item in environment)
    return {name: str(value) for name, value in environment.items()}


def settings_module(service: dict) -> str:
    return interpolate(
        service_environment(service).get("DJANGO_SETTINGS_MODULE", dockerfile_env().get("DJANGO_SETTINGS_MODULE", ""))
    )


@functools.cache
def runtime_requirements() -> frozenset[str]:
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(canonicalize_name(Requirement(line).name))
    return frozenset(names)


# --- .dockerignore ----------------------------------------------------------------------------------


def _dockerignore_regex(pattern: str) -> re.Pattern:
    """Docker's pattern syntax: `*` and `?` stay within one path segment, `**` spans segments."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[" and "]" in pattern[i:]:
            end = pattern.index("]", i)
            out, i = out + "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


@functools.cache
def dockerignore_rules() -> tuple[tuple[bool, re.Pattern], ...]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((negated, _dockerignore_regex(pattern)))
    return tuple(rules)


def dockerignored(relative: str) -> bool:
    """Whether Docker leaves `relative` (or a folder it is in) out of the build context."""
    parts = PurePosixPath(relative).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negated, regex in dockerignore_rules():
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def context_problems(path: Path, what: str) -> list[str]:
    """`path` is needed in the image: it must be in the project and not excluded by .dockerignore."""
    try:
        relative = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return [f"{what} resolves to {path}, outside the project, so the image does not contain it"]
    if dockerignored(relative):
        return [f"{what} needs {relative}, but .dockerignore keeps it out of the image"]
    return []


# --- Checking one command ---------------------------------------------------------------------------


def simple_commands(argv: list[str]) -> list[tuple[dict[str, str], list[str]]]:
    """The programs an argv runs, each with its leading `NAME=value` assignments.

    A `sh -c` script is split at `&&`, `||`, `;` and `|`; a leading `exec` or `env` is dropped.
    """
    if not argv:
        return []
    if PurePosixPath(argv[0]).name in SHELLS and "-c" in argv:
        script = argv[argv.index("-c") + 1]
        parts = re.split(r"&&|\|\||[;|\n]", script)
        return [command for part in parts for command in simple_commands(shlex.split(part))]
    assignments: dict[str, str] = {}
    while argv and (argv[0] in {"exec", "env"} or ASSIGNMENT.fullmatch(argv[0])):
        if "=" in argv[0]:
            name, value = argv[0].split("=", 1)
            assignments[name] = value
        argv = argv[1:]
    return [(assignments, argv)] if argv else []


def binary_problems(program: str) -> list[str]:
    scripts = [ep for ep in entry_points(group="console_scripts") if ep.name == program]
    if not scripts:
        return [f"`{program}` is not a console script of any installed package, so the image has no such program"]
    providers = {canonicalize_name(ep.dist.name) for ep in scripts if ep.dist is not None}
    if not providers & runtime_requirements():
        return [f"`{program}` comes from {sorted(providers)}, which requirements.txt (all the image installs) lacks"]
    return []


def module_problems(module: str, what: str) -> list[str]:
    try:
        spec = find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None:
        return [f"{what}: no module {module!r} is importable"]
    if spec.origin and Path(spec.origin).is_relative_to(ROOT):
        return context_problems(Path(spec.origin), what)
    return []


def manage_problems(args: list[str]) -> list[str]:
    """`args` starts with the path to manage.py; the next word must be a real management command."""
    if not (ROOT / args[0]).is_file():
        return [f"`{shlex.join(args)}`: there is no {args[0]} in the project"]
    problems = context_problems(ROOT / args[0], f"`{shlex.join(args)}`")
    subcommand = next((arg for arg in args[1:] if not arg.startswith("-")), None)
    if subcommand not in get_commands():
        problems.append(f"`{shlex.join(args)}`: {subcommand!r} is not a Django management command of this project")
    return problems


def wsgi_problems(target: str, what: str) -> list[str]:
    module, _, attribute = target.partition(":")
    problems = module_problems(module, what)
    if problems:
        return problems
    application = getattr(importlib.import_module(module), attribute or "application", None)
    if not callable(application):
        problems.append(f"{what}: module {module} has no callable {attribute or 'application'!r}")
    return problems


def gunicorn_problems(args: list[str]) -> list[str]:
    what = f"`gunicorn {shlex.join(args)}`"
    try:
        parsed = GunicornConfig().parser().parse_args(args)
    except SystemExit:
        return [f"{what}: gunicorn rejects these arguments"]
    if len(parsed.args) != 1:
        return [f"{what}: gunicorn needs exactly one WSGI application as module:attribute, got {parsed.args}"]
    problems = wsgi_problems(parsed.args[0], what)
    if parsed.config and not parsed.config.startswith("python:") and not (ROOT / parsed.config).is_file():
        problems.append(f"{what}: the config file {parsed.config} does not exist in the project")
    return problems


def celery_app_name(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg in {"-A", "--app"}:
            return args[i + 1] if i + 1 < len(args) else None
        if arg.startswith("--app="):
            return arg.removeprefix("--app=")
        if arg.startswith("-A") and len(arg) > 2:
            return arg[2:]
    return None


def celery_subcommand(args: list[str]) -> str | None:
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in CELERY_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def celery_problems(args: list[str]) -> list[str]:
    what = f"`celery {shlex.join(args)}`"
    problems = []
    name = celery_app_name(args)
    if name is None:
        problems.append(f"{what}: no -A/--app, so Celery would not load the project's app")
    else:
        # Celery's own lookup: `-A config` finds config.app, config.celery, then config.celery.app.
        try:
            app = find_app(name)
        except Exception as error:  # Whatever the lookup raises, the process would die at start.
            app = error
        if not isinstance(app, Celery):
            problems.append(f"{what}: `-A {name}` does not resolve to a Celery app ({app!r})")
        problems += module_problems(name.partition(":")[0], what)
    subcommand = celery_subcommand(args)
    if subcommand not in celery_cli.commands:
        problems.append(f"{what}: {subcommand!r} is not a celery subcommand")
    if subcommand == "worker" and any(arg in {"-B", "--beat"} or arg.startswith("--beat=") for arg in args):
        problems.append(f"{what}: a worker with an embedded beat would be a second scheduler; beat runs alone")
    return problems


def command_problems(argv: list[str], *, strict: bool = True) -> list[str]:
    """What in `argv` does not exist in the project. `strict`: every program must be installed from
    requirements.txt (or be python); otherwise only the project's own commands are checked."""
    if not argv:
        return ["the command is empty"]
    problems = []
    for _, (program, *args) in simple_commands(argv):
        name = PurePosixPath(program).name
        if name in PYTHONS and args[:1] == ["-m"] and len(args) > 1:
            if args[1] in {"gunicorn", "celery"}:
                problems += command_problems([args[1], *args[2:]], strict=False)
                continue
            problems += module_problems(args[1], f"`{shlex.join([program, *args])}`")
            top = args[1].split(".")[0]
            dists = {canonicalize_name(d) for d in packages_distributions().get(top, [])}
            if strict and dists and not dists & runtime_requirements():
                problems.append(f"`python -m {args[1]}` comes from {sorted(dists)}, which requirements.txt lacks")
        elif name in PYTHONS and args and args[0].endswith("manage.py"):
            problems += manage_problems(args)
        elif name in PYTHONS and args and not args[0].startswith("-") and not (ROOT / args[0]).is_file():
            problems.append(f"`{shlex.join([program, *args])}`: there is no script {args[0]} in the project")
        elif name == "manage.py":
            problems += manage_problems([program.removeprefix("./"), *args])
        elif name not in PYTHONS:
            if strict:
                problems += binary_problems(name)
            if name == "gunicorn":
                problems += gunicorn_problems(args)
            elif name == "celery":
                problems += celery_problems(args)
    return problems


# --- What the settings read -------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvRead:
    name: str
    required: bool  # Read without a default by a module-level statement: unset stops the import.


def _env_reads(node: ast.AST, *, top_level: bool) -> list[EnvRead]:
    reads = []
    for child in ast.walk(node):
        if isinstance(child, ast.Call) and child.args and isinstance(child.args[0], ast.Constant):
            func, name = child.func, child.args[0].value
            if not isinstance(name, str):
                continue
            has_default = len(child.args) > 1 or any(keyword.arg == "default" for keyword in child.keywords)
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "env":
                reads.append(EnvRead(name, top_level and not has_default))  # django-environ: env.str(...) etc.
            elif isinstance(func, ast.Name) and func.id == "env":
                reads.append(EnvRead(name, top_level and not has_default))
            elif isinstance(func, ast.Attribute) and ast.unparse(func) in {"os.environ.get", "os.getenv"}:
                reads.append(EnvRead(name, False))
        elif (
            isinstance(child, ast.Subscript)
            and ast.unparse(child.value) == "os.environ"
            and isinstance(child.slice, ast.Constant)
            and isinstance(child.ctx, ast.Load)
        ):
            reads.append(EnvRead(child.slice.value, top_level))
    return reads


def module_env_reads(path: Path) -> list[EnvRead]:
    reads = []
    for statement in ast.parse(path.read_text()).body:
        conditional = isinstance(statement, ast.If | ast.Try | ast.For | ast.While | ast.With | ast.FunctionDef)
        reads += _env_reads(statement, top_level=not conditional)
    return reads


def settings_files(module: str) -> list[Path]:
    """The settings module's file and those it star-imports from config.settings."""
    spec = find_spec(module)
    assert spec is not None and spec.origin, f"settings module {module!r} is not importable"
    files = [Path(spec.origin)]
    for node in ast.parse(files[0].read_text()).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("config.settings"):
            files += settings_files(node.module)
    return files


def required_variables(module: str) -> set[str]:
    return {read.name for path in settings_files(module) for read in module_env_reads(path) if read.required}


@functools.cache
def variables_read_by_settings() -> frozenset[str]:
    return frozenset(read.name for path in (ROOT / "config").rglob("*.py") for read in module_env_reads(path))


# --- The tests ----------------------------------------------------------------------------------------


def test_compose_defines_every_service() -> None:
    missing = REQUIRED_SERVICES - services().keys()
    assert not missing, f"docker-compose.yml lacks the services {sorted(missing)}"


def test_project_services_are_built_from_this_projects_dockerfile() -> None:
    problems = []
    for name in sorted(PROJECT_SERVICES & services().keys()):
        build = services()[name].get("build")
        if build is None:
            problems.append(f"{name} has no `build:`, so its commands would go unchecked against this project")
            continue
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile_name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        if (COMPOSE_FILE.parent / context).resolve() != ROOT or dockerfile_name != "Dockerfile":
            problems.append(f"{name} builds {context}/{dockerfile_name}, not the project's Dockerfile")
    assert not problems, "\n".join(problems)


def test_every_command_of_a_project_service_names_real_things() -> None:
    problems = [
        f"service {name}: {problem}"
        for name, service in sorted(built_services().items())
        for command in service_commands(service)
        for problem in command_problems(command)
    ]
    assert built_services(), "no service in docker-compose.yml has `build:`; nothing was checked"
    assert not problems, "\n".join(problems)


def test_migrate_service_runs_migrate() -> None:
    commands = [argv for _, argv in simple_commands(service_commands(services()["migrate"])[0])]
    runs_migrate = any(
        arg.endswith("manage.py") and argv[i + 1 : i + 2] == ["migrate"]
        for argv in commands
        for i, arg in enumerate(argv[:2])
    )
    assert runs_migrate, f"the migrate service runs {commands}, not `python manage.py migrate`"


def test_dockerfile_command_names_real_things() -> None:
    command = image_command()
    assert command, "the Dockerfile has neither CMD nor ENTRYPOINT"
    problems = command_problems(command)
    assert not problems, "Dockerfile CMD/ENTRYPOINT:\n" + "\n".join(problems)


def test_dockerfile_build_steps_name_real_management_commands() -> None:
    problems = [
        f"Dockerfile `RUN {value}`: {problem}"
        for value in dockerfile_values("RUN")
        for problem in command_problems(dockerfile_argv(value), strict=False)
    ]
    assert not problems, "\n".join(problems)


def test_dockerfile_copies_only_files_in_the_build_context() -> None:
    problems = []
    for instruction in dockerfile():
        if instruction.keyword not in {"COPY", "ADD"}:
            continue
        words = json.loads(instruction.value) if instruction.value.startswith("[") else shlex.split(instruction.value)
        if any(word.startswith("--from") for word in words):
            continue  # From another stage or image, not from the context.
        sources = [word for word in words if not word.startswith("--")][:-1]
        for source in sources:
            found = list(ROOT.glob(source)) if any(c in source for c in "*?[") else [ROOT / source]
            if not found or not all(path.exists() for path in found):
                problems.append(f"`{instruction.keyword} {instruction.value}`: {source} does not exist in the project")
            elif source.strip("./"):
                problems += context_problems(ROOT / source, f"`{instruction.keyword} {instruction.value}`")
    assert not problems, "\n".join(problems)


def test_dockerignore_keeps_local_state_out_and_the_code_in() -> None:
    should_be_out = [".git", ".venv", "var/postgres", ".env", "staticfiles/admin", "ledger/__pycache__/x.pyc"]
    should_be_out += [".pytest_cache", "test-artifacts"]
    leaked = [path for path in should_be_out if not dockerignored(path)]
    assert not leaked, f".dockerignore lets {leaked} into the image"
    should_be_in = ["manage.py", "requirements.txt", "config/wsgi.py", "config/celery.py", "static/.gitkeep"]
    should_be_in += [".env.example", "templates/home.html"]
    lost = [path for path in should_be_in if dockerignored(path)]
    assert not lost, f".dockerignore keeps {lost} out of the image, which needs them"


def test_dockerfile_installs_runtime_requirements_as_root_and_runs_as_another_user() -> None:
    installs = [value for value in dockerfile_values("RUN") if "pip install" in value]
    assert installs, "the Dockerfile never runs pip install"
    for value in installs:
        assert "requirements.txt" in value, f"`RUN {value}` does not install requirements.txt"
        assert "requirements-dev" not in value, f"`RUN {value}` installs development dependencies into the image"
        assert "--no-cache-dir" in value, f"`RUN {value}` leaves pip's cache in the image"
    users = dockerfile_values("USER")
    assert users, "the Dockerfile has no USER, so every process runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"the image ends with USER {users[-1]}, which is root"
    module = dockerfile_env().get("DJANGO_SETTINGS_MODULE")
    assert module == "config.settings.production", f"the image's DJANGO_SETTINGS_MODULE is {module!r}"


def test_collectstatic_step_sets_every_variable_the_settings_require() -> None:
    module = dockerfile_env().get("DJANGO_SETTINGS_MODULE", "config.settings.base")
    required = required_variables(module)
    steps = [
        (assignments, argv)
        for value in dockerfile_values("RUN")
        for assignments, argv in simple_commands(dockerfile_argv(value))
        if "collectstatic" in argv
    ]
    assert steps, "the Dockerfile never runs `manage.py collectstatic`"
    for assignments, argv in steps:
        missing = required - assignments.keys() - dockerfile_env().keys()
        assert not missing, f"`{shlex.join(argv)}` imports {module}, which stops without {sorted(missing)}"


def test_exactly_one_celery_beat() -> None:
    beats = []
    for name, service in services().items():
        for command in service_commands(service) if service.get("build") else [as_argv(service.get("command"))]:
            for _, (program, *args) in simple_commands(command):
                if PurePosixPath(program).name == "celery" and celery_subcommand(args) == "beat":
                    beats.append(name)
    assert beats == ["beat"], f"`celery beat` must run in exactly one service, `beat`; it runs in {beats}"
    replicas = services()["beat"].get("deploy", {}).get("replicas", 1)
    assert replicas == 1, f"the beat service asks for {replicas} replicas; a second beat sends every task twice"


def test_beat_writes_its_schedule_to_a_volume() -> None:
    """The image's user cannot write the code directory, where beat puts its schedule by default."""
    service = services()["beat"]
    (_, (_, *args)) = simple_commands(service_commands(service)[0])[0]
    schedule = None
    for i, arg in enumerate(args):
        if arg in {"-s", "--schedule"}:
            schedule = args[i + 1]
        elif arg.startswith("--schedule="):
            schedule = arg.split("=", 1)[1]
    assert schedule, "beat has no --schedule, so it would write celerybeat-schedule into the read-only /app"
    targets = {str(volume).split(":")[1] for volume in service.get("volumes", []) if ":" in str(volume)}
    assert str(PurePosixPath(schedule).parent) in targets, f"beat's schedule {schedule} is in no volume ({targets})"


def test_web_waits_for_healthy_backing_services_and_finished_migrations() -> None:
    depends_on = services()["web"].get("depends_on", {})
    assert isinstance(depends_on, dict), "web's depends_on is a list, so it waits for no condition"
    expected = {"db": "service_healthy", "redis": "service_healthy", "migrate": "service_completed_successfully"}
    actual = {name: (depends_on.get(name) or {}).get("condition") for name in expected}
    assert actual == expected, f"web depends on {actual}; it needs {expected}"


def has_healthcheck(service: dict) -> bool:
    healthcheck = service.get("healthcheck") or {}
    return bool(healthcheck.get("test")) and not healthcheck.get("disable") and healthcheck["test"] != ["NONE"]


def test_every_depends_on_condition_can_be_met() -> None:
    problems = []
    for name, service in services().items():
        depends_on = service.get("depends_on", {})
        for target, spec in depends_on.items() if isinstance(depends_on, dict) else []:
            condition = (spec or {}).get("condition", "service_started")
            if target not in services():
                problems.append(f"{name} depends on {target}, which is no service")
            elif condition == "service_healthy" and not has_healthcheck(services()[target]):
                problems.append(f"{name} waits for {target} to be healthy, but {target} has no healthcheck")
            elif condition == "service_completed_successfully":
                restart = str(services()[target].get("restart", "no"))
                if restart in {"always", "unless-stopped"}:
                    problems.append(f"{name} waits for {target} to finish, but restart: {restart} runs it forever")
    assert not problems, "\n".join(problems)


def gunicorn_binds() -> list[str]:
    (_, (program, *args)) = simple_commands(service_commands(services()["web"])[0])[0]
    assert PurePosixPath(program).name == "gunicorn", f"web runs {program}, not gunicorn"
    try:
        return GunicornConfig().parser().parse_args(args).bind or []
    except SystemExit:
        return [f"(gunicorn rejects the arguments {args})"]


def replicas(name: str) -> str:
    """A service's replica count as compose reads it, `${WEB_REPLICAS:-2}` as its default."""
    return interpolate(str(services()[name].get("deploy", {}).get("replicas", 1)))


def test_web_replicas_serve_gunicorn_behind_the_proxy_on_one_published_port() -> None:
    web, proxy = services()["web"], services()["proxy"]
    assert "0.0.0.0:8000" in gunicorn_binds(), f"gunicorn binds {gunicorn_binds()}, not 0.0.0.0:8000"
    # Replicas cannot share a host port: only the proxy publishes one.
    assert not web.get("ports"), f"web publishes {web.get('ports')}; with replicas only the proxy may"
    assert "8000" in {str(port) for port in web.get("expose", [])}, "web does not expose 8000 to the proxy"
    assert web.get("deploy", {}).get("replicas") == "${WEB_REPLICAS:-2}", "WEB_REPLICAS (default 2) sets web's replicas"
    assert replicas("web") == "2"
    published = {str(port).split(":")[-2] for port in proxy.get("ports", []) if ":" in str(port)}
    assert published == {"8000"}, f"the proxy publishes host ports {published}, not 8000"
    assert str(proxy.get("image", "")).startswith("nginx:"), "the proxy is nginx"
    assert (proxy.get("depends_on") or {}).get("web") == {"condition": "service_started"}

    # The mounted configuration is the repository's, and it sends every request to the web replicas.
    mounts = {str(volume).split(":")[0]: str(volume).split(":")[1] for volume in proxy.get("volumes", [])}
    assert mounts.get("./deploy/nginx.conf") == "/etc/nginx/nginx.conf", mounts
    conf = NGINX_CONF.read_text()
    container_port = str(proxy["ports"][0]).split(":")[-1]
    assert re.search(rf"^\s*listen\s+{container_port};", conf, re.M), f"nginx does not listen on {container_port}"
    assert re.search(r"upstream web \{\s*server web:8000;", conf), "nginx's upstream is not web:8000"
    assert re.search(r"proxy_pass http://web;", conf), "nginx does not pass requests to the upstream"
    # The client address and scheme reach Django; a POST is never sent again to another replica.
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in conf and "X-Forwarded-Proto $scheme" in conf
    assert "non_idempotent" not in conf, "nginx would replay a money write on another replica"
    # Behind that one proxy, the client's address is the one it appended (config/addresses.py).
    assert service_environment(web).get("DJANGO_TRUSTED_PROXIES") == "1", "web does not trust its one proxy"
    assert conf.count("{") == conf.count("}"), "unbalanced braces in nginx.conf"


def test_two_workers_and_one_beat() -> None:
    assert replicas("worker") == "2", f"the worker service runs {replicas('worker')} replicas, not 2"
    assert replicas("beat") == "1", "a second beat sends every periodic task twice"


def test_project_services_set_every_variable_their_settings_require() -> None:
    problems = []
    for name, service in sorted(built_services().items()):
        module = settings_module(service)
        missing = required_variables(module) - service_environment(service).keys()
        if missing:
            problems.append(f"{name} runs {module}, which stops at start without {sorted(missing)}")
    assert not problems, "\n".join(problems)


def test_secret_key_comes_from_the_host_and_urls_point_at_compose_services() -> None:
    problems = []
    for name, service in sorted(built_services().items()):
        environment = service_environment(service)
        if not re.fullmatch(r"\$\{DJANGO_SECRET_KEY:\?[^}]+\}", environment.get("DJANGO_SECRET_KEY", "")):
            problems.append(f"{name}: DJANGO_SECRET_KEY must be ${{DJANGO_SECRET_KEY:?...}}, not a value in the file")
        for variable, target_env in [("DATABASE_URL", "POSTGRES"), ("REDIS_URL", None)]:
            url = urlsplit(interpolate(environment.get(variable, "")))
            target = services().get(url.hostname or "")
            if target is None:
                problems.append(f"{name}: {variable} points at host {url.hostname!r}, which is no compose service")
            elif target_env:
                postgres = service_environment(target)
                given = (url.username, url.password, url.path.lstrip("/"))
                wanted = tuple(postgres.get(f"POSTGRES_{key}") for key in ("USER", "PASSWORD", "DB"))
                if given != wanted:
                    problems.append(f"{name}: {variable} has user/password/db {given}, {url.hostname} has {wanted}")
    assert not problems, "\n".join(problems)


def test_compose_sets_only_variables_that_something_reads() -> None:
    """A misspelt name is silently ignored and the setting keeps its production default."""
    assert "DATABASE_URL" in variables_read_by_settings(), "the settings scan found no env reads; it is broken"
    known = variables_read_by_settings() | READ_OUTSIDE_SETTINGS
    problems = [
        f"service {name} sets {variable}, which nothing in config/ reads"
        for name, service in sorted(built_services().items())
        for variable in sorted(service_environment(service).keys() - known)
    ]
    assert not problems, "\n".join(problems)


def test_env_example_lists_every_settings_variable_compose_sets() -> None:
    assert ENV_EXAMPLE.is_file(), ".env.example is missing; it must list every variable the settings read"
    listed = set(re.findall(r"^\s*#?\s*(?:export\s+)?([A-Z][A-Z0-9_]*)\s*=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    set_by_compose = {variable for service in built_services().values() for variable in service_environment(service)}
    missing = (set_by_compose & variables_read_by_settings()) - listed
    assert not missing, f"docker-compose.yml sets {sorted(missing)}, which the settings read but .env.example omits"
