import os
import subprocess

from flask import Flask, request

import helpers.wrap
from helpers.wrap import RequestWrapper, constant_name, for_html, passthrough, query_param

from . import util
from .util import fixed

app = Flask(__name__)


@app.route("/safe")
def safe():
    wrapped = helpers.wrap.RequestWrapper(request)
    name = wrapped.get_safe("name")
    os.system("cat " + name)  # clean: get_safe returns a constant
    number = RequestWrapper(request).get_number("n")
    os.system("seq " + str(number))  # clean: an int
    return "ok"


@app.route("/unsafe")
def unsafe():
    wrapped = RequestWrapper(request)
    name = wrapped.get_query("name")
    os.system("cat " + name)  # input: the request's query string
    subprocess.call(query_param("cmd"), shell=True)  # input, though only a constant was passed
    return "ok"


@app.route("/functions")
def functions():
    given = request.args.get("file")
    os.system("cat " + constant_name(given))  # clean: a constant whatever it is given
    os.system("cat " + passthrough(given))  # input: returned as given
    os.system("cat " + helpers.wrap.for_html(given))  # input: escaped for HTML, not for a shell
    return for_html(given)  # clean for HTML


@app.route("/relative")
def relative():
    given = request.args.get("cmd")
    os.system(fixed(given))  # clean: a constant
    os.system(util.strip_all(given))  # input
    return "ok"


@app.route("/generator")
def generator():
    for v in helpers.wrap.items([request.args.get("cmd")]):
        os.system(v)  # input: generators are not summarised, the default reading holds
    return "ok"
