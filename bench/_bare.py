"""The ceiling for ingest: the same server stack (uvicorn + Starlette) parsing the JSON body
and answering 200 without storing anything."""

from __future__ import annotations

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def bare(request: Request) -> JSONResponse:
    body = json.loads(await request.body())
    return JSONResponse({"status": "accepted", "alerts": len(body.get("alerts", []))})


app = Starlette(routes=[Route("/webhooks/{name}", bare, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",  # the stack `warroom serve` runs on
        http="httptools",
    )
