"""The Python recipes of docs/integrations.md, run as written: the
sqlite3-module helper, Flask, Django and SQLAlchemy, each in its own
/usr/bin/python3 process against a real pool."""
import os
import subprocess
import sys
import textwrap
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from integlib import IntegTestCase, need_python_module  # noqa: E402

# How many slots this process holds, asked on an in-memory connection
# (which holds none).
HELD = ("def held():\n"
        "    v = sqlite3.connect(':memory:')\n"
        "    n = v.execute('SELECT count(*) FROM pool_connections WHERE pid = ?',"
        " (os.getpid(),)).fetchone()[0]\n"
        "    v.close()\n"
        "    return n\n")


class PythonRecipesTest(IntegTestCase):
    def python(self, code, timeout=60):
        """Run code in self.dir (where the recipes are); returns stdout lines."""
        r = subprocess.run(["/usr/bin/python3", "-c",
                            "import os, sqlite3, sys\nsys.path.insert(0, '.')\n" + HELD
                            + textwrap.dedent(code)], cwd=self.dir, env=self.env,
                           capture_output=True, text=True, timeout=timeout)
        self.assertEqual((r.returncode, r.stderr), (0, ""), r.stdout)
        return r.stdout.splitlines()

    def test_boot_helper_loads_once_and_tells_a_full_pool_from_a_lock(self):
        self.write("dbpool_boot.py")
        out = self.python("""\
            from dbpool_boot import load_dbpool, is_pool_full
            load_dbpool()
            print(held())                      # the boot connection holds nothing
            c = sqlite3.connect(os.environ["APP_DB"])
            print(c.execute("SELECT joined FROM pool_connections WHERE current").fetchone()[0])
            print(held())
            """)
        self.assertEqual(out, ["0", "auto", "1"])

        shells = self.fill_pool()
        out = self.python("""\
            from dbpool_boot import load_dbpool, is_pool_full
            load_dbpool()
            try:
                sqlite3.connect("file:%s?dbpool_timeout=100" % os.environ["APP_DB"], uri=True)
            except sqlite3.OperationalError as e:
                print(is_pool_full(e))
                try:
                    raise RuntimeError("wrapped") from e
                except RuntimeError as w:
                    print(is_pool_full(w))
            """)
        self.assertEqual(out, ["True", "True"])
        self.close_shell(shells[0])
        # SQLite's own SQLITE_BUSY: a shell holds the write lock.
        shells[1].stdin.write("BEGIN EXCLUSIVE; INSERT INTO hits VALUES ('x');\n")
        shells[1].stdin.flush()
        out = self.python("""\
            import time
            from dbpool_boot import load_dbpool, is_pool_full
            load_dbpool()
            c = sqlite3.connect(os.environ["APP_DB"], timeout=0)
            for _ in range(1000):   # until the shell has its lock
                try:
                    c.execute("INSERT INTO hits VALUES ('y')")
                    c.rollback()
                    time.sleep(0.01)
                except sqlite3.OperationalError as e:
                    print(e.sqlite_errorname, e, is_pool_full(e))
                    break
            """)
        self.assertEqual(out, ["SQLITE_BUSY database is locked False"])

    def test_flask_a_connection_per_request_and_503_when_full(self):
        need_python_module("flask", "python3-flask")
        self.write("dbpool_boot.py")
        self.write("flask_app.py", dest="app.py")
        driver = """\
            from app import app
            client = app.test_client()
            r = client.post("/hits")
            print(r.status_code, r.get_data(as_text=True).strip(), r.headers.get("Retry-After"))
            print(held())                      # closed at teardown
            """
        self.assertEqual(self.python(driver), ["200 1 None", "0"])
        self.fill_pool(timeout_ms=100)
        self.assertEqual(self.python(driver), ["503 busy, try again 1", "0"])

    def test_django_conn_max_age_0_and_the_middleware(self):
        need_python_module("django", "python3-django")
        self.write("dbpool_boot.py")
        self.write("django_middleware.py", dest="pool_full.py")
        self.write(None, recipe_settings(), dest="settings.py")
        self.write(None, textwrap.dedent("""\
            from django.db import connection
            from django.http import HttpResponse
            from django.urls import path

            def hit(request):
                with connection.cursor() as c:
                    c.execute("INSERT INTO hits(at) VALUES (datetime('now'))")
                    c.execute("SELECT joined FROM pool_connections WHERE current")
                    return HttpResponse(c.fetchone()[0])

            urlpatterns = [path("hit", hit)]
            """), dest="urls.py")
        driver = """\
            # A real WSGI request (Django's test Client keeps connections open).
            from wsgiref.util import setup_testing_defaults
            os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
            from django.core.wsgi import get_wsgi_application
            app = get_wsgi_application()
            environ = {"PATH_INFO": "/hit"}
            setup_testing_defaults(environ)
            got = {}
            def start_response(status, headers):
                got.update(headers, status=status.split()[0])
            response = app(environ, start_response)
            body = b"".join(response).decode().strip()
            response.close()                   # request_finished: connections closed
            print(got["status"], body, got.get("Retry-After"))
            print(held())                      # CONN_MAX_AGE = 0: nothing kept
            """
        self.assertEqual(self.python(driver), ["200 auto None", "0"])
        self.fill_pool(timeout_ms=100)
        self.assertEqual(self.python(driver), ["503 busy, try again 1", "0"])

    def test_sqlalchemy_a_slot_per_checkout(self):
        need_python_module("sqlalchemy", "python3-sqlalchemy")
        self.write("dbpool_boot.py")
        self.write("sqlalchemy_engine.py", dest="db.py")
        driver = """\
            from sqlalchemy import exc, text
            from db import engine
            from dbpool_boot import is_pool_full
            try:
                with engine.connect() as c:
                    print(c.execute(text("SELECT joined FROM pool_connections "
                                         "WHERE current")).scalar(), held())
                print(held())                  # given back with the connection
            except exc.OperationalError as e:
                print(is_pool_full(e), "dbpool: pool full:" in str(e.orig))
            """
        self.assertEqual(self.python(driver), ["auto 1", "0"])
        self.fill_pool(timeout_ms=100)
        self.assertEqual(self.python(driver), ["True True"])


def recipe_settings():
    from integlib import recipe
    return recipe("django_settings.py") + textwrap.dedent("""\
        # -- the rest of a minimal project (not part of the recipe) --
        SECRET_KEY = "test"
        DEBUG = False
        ALLOWED_HOSTS = ["*"]
        INSTALLED_APPS = []
        ROOT_URLCONF = "urls"
        USE_TZ = True
        """)


if __name__ == "__main__":
    unittest.main()
