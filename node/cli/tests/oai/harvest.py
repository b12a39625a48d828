"""A real harvester and a real validator for node/cli/tests/oai.rs.

  harvest.py harvest BASE PREFIX [FROM] [SET]   ListRecords with sickle, every page
  harvest.py validate SCHEMAS FILE...           each OAI-PMH answer against OAI-PMH.xsd,
                                                its metadata against oai_dc / huijiao

Prints one JSON object on standard output.
"""
import json
import os
import sys


def harvest(base, prefix, since=None, set_spec=None):
    from sickle import Sickle
    from sickle.oaiexceptions import NoRecordsMatch

    args = {"metadataPrefix": prefix, "ignore_deleted": False}
    if since:
        args["from"] = since
    if set_spec:
        args["set"] = set_spec
    out = []
    try:
        for rec in Sickle(base, max_retries=0).ListRecords(**args):
            h = rec.header
            item = {"id": h.identifier, "datestamp": h.datestamp, "deleted": h.deleted, "sets": h.setSpecs}
            if not h.deleted:
                md = rec.metadata or {}
                item["title"] = (md.get("title") or [None])[0]
            out.append(item)
    except NoRecordsMatch:
        pass
    return {"records": out}


def validate(schemas, files):
    import xmlschema

    envelope = xmlschema.XMLSchema(
        os.path.join(schemas, "OAI-PMH.xsd"),
        locations=[
            ("http://www.openarchives.org/OAI/2.0/oai_dc/", os.path.join(schemas, "oai_dc.xsd")),
            ("urn:huijiao:record:1", os.path.join(schemas, "huijiao.xsd")),
        ],
    )
    errors = {}
    for f in files:
        problems = [str(e).splitlines()[0] for e in envelope.iter_errors(f, use_location_hints=False)]
        if problems:
            errors[f] = problems[:3]
    return {"validated": len(files), "errors": errors}


if __name__ == "__main__":
    if sys.argv[1] == "harvest":
        rest = sys.argv[4:] + [None, None]
        print(json.dumps(harvest(sys.argv[2], sys.argv[3], rest[0] or None, rest[1] or None)))
    else:
        print(json.dumps(validate(sys.argv[2], sys.argv[3:])))
