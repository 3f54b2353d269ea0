"""Calls between one module's own functions: each line that reaches a sink carries a
comment saying whether input reaches it (must be flagged) or not (must not be)."""

import os
import sqlite3
import subprocess

from flask import Flask, request

app = Flask(__name__)


def run(cmd):
    os.system(cmd)  # input: called with the request's text below


def run_listing(name):
    subprocess.call("ls " + shlex_quote(name), shell=True)  # clean: only ever given constants


def shlex_quote(value):
    return "'" + value.replace("'", "") + "'"


def forward(cmd):
    run_later(cmd)


def run_later(cmd):
    os.popen(cmd)  # input: two helpers away from the request


def user_query():
    return request.args.get("q")


def trimmed(value):
    return value.strip()


class Store:
    def __init__(self):
        self.db = sqlite3.connect("app.db")

    def find(self, name):
        return self.db.execute("SELECT * FROM users WHERE name = '%s'" % name)  # input: via lookup

    def lookup(self, name):
        return self.find(name)


@app.route("/run")
def run_route():
    run(request.args["cmd"])
    run_listing("docs")
    forward(request.form["cmd"])
    return "ok"


@app.route("/query")
def query_route():
    q = user_query()
    os.system("grep " + q)  # input: user_query returns the request's text
    fixed = trimmed("  fixed ")
    os.system("echo " + fixed)  # clean: trimmed returns what it is given, a constant here
    trimmed(request.args["x"])
    return "ok"


@app.route("/store")
def store_route():
    store = Store()
    store.lookup(request.args["name"])
    return "ok"
