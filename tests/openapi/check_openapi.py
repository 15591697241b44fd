#!/usr/bin/python3
"""Validates docs/openapi.json: the OpenAPI 3.0 JSON Schema, then what a
JSON Schema cannot say.

    check_openapi.py SCHEMA DOCUMENT   # exit 0: valid; 1: every problem listed
    check_openapi.py --self-test SCHEMA DOCUMENT
        # breaks copies of DOCUMENT in known ways and fails unless each
        # break is reported (so that the check itself can fail)

Why this validator: Debian 12 has no python3-openapi-spec-validator (only
python3-swagger-spec-validator, which knows Swagger 2.0 only), so the
document is validated with Debian's python3-jsonschema against the OpenAPI
Initiative's own JSON Schema of OpenAPI 3.0 (oas-3.0-schema.json here,
README.md says where it comes from). That schema cannot check references or
cross-field rules, so this script adds them:
  - every "$ref" resolves inside the document;
  - every {name} of a path template is declared as an "in": "path"
    parameter (at the path or the operation level), and every declared path
    parameter appears in the template;
  - operationIds are unique;
  - every operation states its scope in x-modelreg-scope (model:read,
    model:write, model:admin or none), consistent with its "security".

Run with Debian's /usr/bin/python3 (meson test does): a missing jsonschema
module is an error, never a skip.
"""
import copy
import json
import re
import sys

try:
    import jsonschema
except ImportError:
    sys.exit("check_openapi.py: the Python module jsonschema is missing: install Debian's "
             "python3-jsonschema (tools/install-deps) and run this with /usr/bin/python3 "
             f"(this is {sys.executable})")

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SCOPES = ("model:read", "model:write", "model:admin", "none")


def resolve(doc, pointer):
    """The value at a local JSON pointer ("#/a/b"), or raises KeyError."""
    if not pointer.startswith("#"):
        raise KeyError(f"not a local reference: {pointer}")
    node = doc
    for raw in pointer[1:].split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(pointer)
    return node


def walk(node, where=""):
    """Yields (where, dict) for every object in the tree."""
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from walk(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{where}/{i}")


def deref(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        node = resolve(doc, node["$ref"])
    return node


def problems(schema, doc):
    out = []
    validator = jsonschema.Draft4Validator(schema)
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        out.append("schema: at /" + "/".join(str(p) for p in e.absolute_path) + ": " + e.message)

    for where, node in walk(doc):
        ref = node.get("$ref")
        if isinstance(ref, str):
            try:
                resolve(doc, ref)
            except (KeyError, IndexError, ValueError):
                out.append(f"$ref {ref} at {where} does not resolve")

    seen_ids = {}
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        in_template = re.findall(r"\{([^{}]*)\}", path)
        if len(set(in_template)) != len(in_template):
            out.append(f"{path}: a path parameter appears twice")
        for method in METHODS:
            oper = item.get(method)
            if not isinstance(oper, dict):
                continue
            what = f"{method.upper()} {path}"
            declared = set()
            for p in list(item.get("parameters", [])) + list(oper.get("parameters", [])):
                try:
                    p = deref(doc, p)
                except (KeyError, IndexError, ValueError):
                    continue  # reported above
                if isinstance(p, dict) and p.get("in") == "path":
                    declared.add(p.get("name"))
                    if p.get("required") is not True:
                        out.append(f"{what}: path parameter {p.get('name')} must be required")
            for name in in_template:
                if name not in declared:
                    out.append(f"{what}: path parameter {{{name}}} is not declared")
            for name in sorted(declared - set(in_template)):
                out.append(f"{what}: declares path parameter {name}, which is not in the path")
            op_id = oper.get("operationId")
            if not op_id:
                out.append(f"{what}: no operationId")
            elif op_id in seen_ids:
                out.append(f"{what}: operationId {op_id} is also that of {seen_ids[op_id]}")
            else:
                seen_ids[op_id] = what
            scope = oper.get("x-modelreg-scope")
            if scope not in SCOPES:
                out.append(f"{what}: x-modelreg-scope must be one of {', '.join(SCOPES)}, not {scope!r}")
            elif (scope == "none") != (oper.get("security") == []):
                out.append(f"{what}: x-modelreg-scope {scope} disagrees with its security {oper.get('security')!r}")
    return out


def self_test(schema, doc):
    """Each break must be reported; the document itself must be clean."""
    def broken(change):
        d = copy.deepcopy(doc)
        change(d)
        return d

    first_path = next(p for p in doc["paths"] if "{type}" in p)
    first_op = next(m for m in METHODS if m in doc["paths"][first_path])
    a_path, b_path = [p for p in doc["paths"] if "get" in doc["paths"][p]][:2]
    cases = {
        "schema: at /openapi": broken(lambda d: d.update(openapi="2.0")),
        "schema: at /paths": broken(lambda d: d["paths"].update({"no-slash": {}})),
        "does not resolve": broken(lambda d: d["paths"][first_path][first_op].update(
            responses={"200": {"$ref": "#/components/responses/NoSuchResponse"}})),
        "is not declared": broken(lambda d: d["paths"].update(
            {"/api/v1/x/{undeclared}": {"get": {"operationId": "x", "x-modelreg-scope": "none",
                                                 "security": [], "responses": {"200": {"description": "x"}}}}})),
        "which is not in the path": broken(lambda d: d["paths"].update(
            {"/api/v1/y": {"get": {"operationId": "y", "x-modelreg-scope": "none", "security": [],
                                   "parameters": [{"name": "z", "in": "path", "required": True,
                                                   "schema": {"type": "string"}}],
                                   "responses": {"200": {"description": "y"}}}}})),
        "is also that of": broken(lambda d: d["paths"][b_path]["get"].update(
            operationId=d["paths"][a_path]["get"]["operationId"])),
        "x-modelreg-scope must be": broken(lambda d: d["paths"][a_path]["get"].update(
            {"x-modelreg-scope": "model:everything"})),
        "disagrees with its security": broken(lambda d: d["paths"]["/healthz"]["get"].update(
            security=[{"bearer": []}])),
    }
    failed = 0
    if problems(schema, doc):
        print("self-test: the document itself has problems; run without --self-test")
        failed += 1
    for expected, d in cases.items():
        found = problems(schema, d)
        if not any(expected in p for p in found):
            print(f"self-test: a document with a '{expected}' problem passed: {found}")
            failed += 1
    print(f"self-test: FAILED ({failed} problems above)" if failed
          else f"self-test: all {len(cases)} breaks caught")
    return 1 if failed else 0


def main(argv):
    args = argv[1:]
    test = bool(args) and args[0] == "--self-test"
    if test:
        args = args[1:]
    if len(args) != 2:
        sys.exit("usage: check_openapi.py [--self-test] SCHEMA DOCUMENT")
    with open(args[0], encoding="utf-8") as f:
        schema = json.load(f)
    try:
        with open(args[1], encoding="utf-8") as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        print(f"{args[1]}: not JSON: {e}")
        return 1
    if test:
        return self_test(schema, doc)
    found = problems(schema, doc)
    for p in found:
        print(f"{args[1]}: {p}")
    if not found:
        n = sum(1 for item in doc["paths"].values() for m in METHODS if m in item)
        print(f"{args[1]}: valid OpenAPI {doc['openapi']}: {len(doc['paths'])} paths, {n} operations "
              f"(jsonschema {jsonschema.Draft4Validator.__name__}, {sys.executable})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
