"""The host's side of the worker protocol, for driving ``azure_functions_runtime`` locally.

How the platform runs a Python 3.13 app ("runtime versioning"): the Functions host starts
its thin *proxy worker*, which talks gRPC to the host, imports ``azure_functions_runtime``
from the app's own packages, and hands each request to it as a ``WorkerRequest(name,
request, properties)`` whose ``request`` is the host's ``StreamingMessage`` and whose
``properties`` carry ``{"protos": <the proxy's generated FunctionRpc_pb2 classes>, "host":
...}`` on init. The runtime bundles no message classes: it builds every answer with the
``protos`` it was given. The proxy worker (and the host's ``FunctionRpc.proto``) ship with
the host and Core Tools only, not on PyPI.

So this module stands in for the proxy: real protobuf messages (``protobuf`` from PyPI),
declared here for the part of the protocol the runtime touches. Message, field and enum
names are the protocol's, because the runtime and ``azure.functions`` address them by
name (``WhichOneof("data")``, ``protos.BindingInfo.out``...). Field numbers are ours: these
messages never leave the process. A field the runtime sets that is missing here fails
loudly (protobuf refuses unknown keyword arguments), so the subset cannot silently lie.
Not declared: shared memory, cookies' nullable attributes, model binding data.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, message_factory

PACKAGE = "AzureFunctionsRpcMessages"

_T = descriptor_pb2.FieldDescriptorProto
STRING, BOOL, INT32, SINT64, DOUBLE, BYTES = (
    _T.TYPE_STRING,
    _T.TYPE_BOOL,
    _T.TYPE_INT32,
    _T.TYPE_SINT64,
    _T.TYPE_DOUBLE,
    _T.TYPE_BYTES,
)

# name -> list of fields: (field, type or message/enum name, "repeated"|"map"|oneof name|"")
# A map is written as ("field", ("key type", "value type or message"), "map").
Field = tuple[str, Any, str]
MESSAGES: dict[str, list[Field]] = {
    "StreamingMessage": [
        ("request_id", STRING, ""),
        ("worker_init_request", "WorkerInitRequest", "content"),
        ("worker_init_response", "WorkerInitResponse", "content"),
        ("functions_metadata_request", "FunctionsMetadataRequest", "content"),
        ("function_metadata_response", "FunctionMetadataResponse", "content"),
        ("function_load_request", "FunctionLoadRequest", "content"),
        ("function_load_response", "FunctionLoadResponse", "content"),
        ("invocation_request", "InvocationRequest", "content"),
        ("invocation_response", "InvocationResponse", "content"),
    ],
    "WorkerInitRequest": [
        ("host_version", STRING, ""),
        ("capabilities", (STRING, STRING), "map"),
        ("worker_directory", STRING, ""),
        ("function_app_directory", STRING, ""),
    ],
    "WorkerMetadata": [
        ("runtime_name", STRING, ""),
        ("runtime_version", STRING, ""),
        ("worker_version", STRING, ""),
        ("worker_bitness", STRING, ""),
        ("custom_properties", (STRING, STRING), "map"),
    ],
    "WorkerInitResponse": [
        ("worker_version", STRING, ""),
        ("capabilities", (STRING, STRING), "map"),
        ("result", "StatusResult", ""),
        ("worker_metadata", "WorkerMetadata", ""),
    ],
    "RpcException": [
        ("source", STRING, ""),
        ("stack_trace", STRING, ""),
        ("message", STRING, ""),
        ("is_user_exception", BOOL, ""),
        ("type", STRING, ""),
    ],
    "StatusResult": [
        ("status", "StatusResult.Status", ""),
        ("result", STRING, ""),
        ("exception", "RpcException", ""),
    ],
    "FunctionsMetadataRequest": [("function_app_directory", STRING, "")],
    "BindingInfo": [
        ("type", STRING, ""),
        ("direction", "BindingInfo.Direction", ""),
        ("data_type", "BindingInfo.DataType", ""),
        ("properties", (STRING, STRING), "map"),
    ],
    "RpcRetryOptions": [
        ("max_retry_count", INT32, ""),
        ("delay_interval", ".google.protobuf.Duration", ""),
        ("minimum_interval", ".google.protobuf.Duration", ""),
        ("maximum_interval", ".google.protobuf.Duration", ""),
        ("retry_strategy", "RpcRetryOptions.RetryStrategy", ""),
    ],
    "RpcFunctionMetadata": [
        ("name", STRING, ""),
        ("directory", STRING, ""),
        ("script_file", STRING, ""),
        ("entry_point", STRING, ""),
        ("bindings", (STRING, "BindingInfo"), "map"),
        ("is_proxy", BOOL, ""),
        ("language", STRING, ""),
        ("raw_bindings", STRING, "repeated"),
        ("function_id", STRING, ""),
        ("managed_dependency_enabled", BOOL, ""),
        ("retry_options", "RpcRetryOptions", ""),
        ("properties", (STRING, STRING), "map"),
    ],
    "FunctionMetadataResponse": [
        ("function_metadata_results", "RpcFunctionMetadata", "repeated"),
        ("result", "StatusResult", ""),
        ("use_default_metadata_indexing", BOOL, ""),
    ],
    "FunctionLoadRequest": [
        ("function_id", STRING, ""),
        ("metadata", "RpcFunctionMetadata", ""),
        ("managed_dependency_enabled", BOOL, ""),
    ],
    "FunctionLoadResponse": [
        ("function_id", STRING, ""),
        ("result", "StatusResult", ""),
        ("is_dependency_downloaded", BOOL, ""),
    ],
    "RpcHttpCookie": [
        ("name", STRING, ""),
        ("value", STRING, ""),
        ("same_site", "RpcHttpCookie.SameSite", ""),
    ],
    "RpcHttp": [
        ("method", STRING, ""),
        ("url", STRING, ""),
        ("headers", (STRING, STRING), "map"),
        ("body", "TypedData", ""),
        ("params", (STRING, STRING), "map"),
        ("status_code", STRING, ""),
        ("query", (STRING, STRING), "map"),
        ("enable_content_negotiation", BOOL, ""),
        ("rawBody", "TypedData", ""),
        ("cookies", "RpcHttpCookie", "repeated"),
    ],
    "TypedData": [
        ("string", STRING, "data"),
        ("json", STRING, "data"),
        ("bytes", BYTES, "data"),
        ("stream", BYTES, "data"),
        ("http", "RpcHttp", "data"),
        ("int", SINT64, "data"),
        ("double", DOUBLE, "data"),
    ],
    "ParameterBinding": [
        ("name", STRING, ""),
        ("data", "TypedData", "rpc_data"),
    ],
    "RpcTraceContext": [
        ("trace_parent", STRING, ""),
        ("trace_state", STRING, ""),
        ("attributes", (STRING, STRING), "map"),
    ],
    "RetryContext": [
        ("retry_count", INT32, ""),
        ("max_retry_count", INT32, ""),
        ("exception", "RpcException", ""),
    ],
    "InvocationRequest": [
        ("invocation_id", STRING, ""),
        ("function_id", STRING, ""),
        ("input_data", "ParameterBinding", "repeated"),
        ("trigger_metadata", (STRING, "TypedData"), "map"),
        ("trace_context", "RpcTraceContext", ""),
        ("retry_context", "RetryContext", ""),
    ],
    "InvocationResponse": [
        ("invocation_id", STRING, ""),
        ("output_data", "ParameterBinding", "repeated"),
        ("return_value", "TypedData", ""),
        ("result", "StatusResult", ""),
    ],
}
ENUMS: dict[str, list[str]] = {
    "StatusResult.Status": ["Failure", "Success", "Cancelled"],
    "BindingInfo.Direction": ["in", "out", "inout"],
    "BindingInfo.DataType": ["undefined", "string", "binary", "stream"],
    "RpcRetryOptions.RetryStrategy": ["exponential_backoff", "fixed_delay"],
    "RpcHttpCookie.SameSite": ["None", "Lax", "Strict", "ExplicitNone"],
}


def _type_ref(name: str) -> str:
    return name if name.startswith(".") else f".{PACKAGE}.{name}"


def _set_type(field: descriptor_pb2.FieldDescriptorProto, kind: Any) -> None:
    if isinstance(kind, int):
        field.type = kind
    elif kind in ENUMS:
        field.type = _T.TYPE_ENUM
        field.type_name = _type_ref(kind)
    else:
        field.type = _T.TYPE_MESSAGE
        field.type_name = _type_ref(kind)


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="tests_runtime_FunctionRpc.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=["google/protobuf/duration.proto"],
    )
    for name, fields in MESSAGES.items():
        message = proto.message_type.add(name=name)
        for enum_name, values in ENUMS.items():
            owner, _, short = enum_name.partition(".")
            if owner == name:
                enum = message.enum_type.add(name=short)
                for number, value in enumerate(values):
                    enum.value.add(name=value, number=number)
        oneofs: list[str] = []
        for number, (field_name, kind, how) in enumerate(fields, start=1):
            field = message.field.add(name=field_name, number=number)
            field.label = _T.LABEL_OPTIONAL
            if how == "map":
                entry_name = "".join(p.capitalize() for p in field_name.split("_")) + "Entry"
                entry = message.nested_type.add(name=entry_name)
                entry.options.map_entry = True
                key, value = kind
                entry.field.add(name="key", number=1, label=_T.LABEL_OPTIONAL, type=key)
                value_field = entry.field.add(name="value", number=2, label=_T.LABEL_OPTIONAL)
                _set_type(value_field, value)
                field.label = _T.LABEL_REPEATED
                field.type = _T.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{name}.{entry_name}"
                continue
            _set_type(field, kind)
            if how == "repeated":
                field.label = _T.LABEL_REPEATED
            elif how:
                if how not in oneofs:
                    oneofs.append(how)
                    message.oneof_decl.add(name=how)
                field.oneof_index = oneofs.index(how)
    return proto


def build() -> SimpleNamespace:
    """A ``protos`` namespace like the proxy worker's: one class per message."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(duration_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(_file())
    classes = {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in MESSAGES
    }
    return SimpleNamespace(**classes)


@dataclass
class WorkerRequest:
    """What the proxy worker hands the runtime: the host's message and, on init, its protos."""

    name: str
    request: Any
    properties: dict[str, Any] | None = None
