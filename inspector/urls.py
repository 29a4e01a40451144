from django.urls import path

from inspector.views import live, messages

app_name = "inspector"

urlpatterns = [
    path("", live.feed_page, name="live"),
    path("messages/<uuid:message_id>/", messages.message_detail, name="message"),
    path("messages/<uuid:message_id>/diagram/", messages.message_diagram, name="message-diagram"),
    path("messages/<uuid:message_id>/diagram.svg", messages.message_svg, name="message-svg"),
    path(
        "messages/<uuid:message_id>/diagram.mmd", messages.message_mermaid, name="message-mermaid"
    ),
    path("runs/<uuid:run_id>/replay/", messages.run_replay, name="run-replay"),
    path("flows/<uuid:correlation_id>/", messages.flow_detail, name="flow"),
    path("flows/<uuid:correlation_id>/diagram.svg", messages.flow_svg, name="flow-svg"),
    path("flows/<uuid:correlation_id>/diagram.mmd", messages.flow_mermaid, name="flow-mermaid"),
]
