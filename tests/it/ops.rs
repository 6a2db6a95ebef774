//! GraphQL operations the tests send, written as a frontend would.

pub const CREATE_FLOW: &str = "mutation($name: String!) { createFlow(input: { name: $name }) { id name createdAt steps { id } } }";

pub const ADD_STEP: &str = "mutation($flowId: ID!, $step: StepInput!) {
  addStep(flowId: $flowId, step: $step) {
    __typename id position
    ... on TicketStep { topic confirmationMessage forwardEmails }
    ... on MessageStep { text }
  }
}";

pub const UPDATE_STEP: &str = "mutation($id: ID!, $step: StepInput!) { updateStep(id: $id, step: $step) { __typename id position } }";

pub const DELETE_STEP: &str = "mutation($id: ID!) { deleteStep(id: $id) }";

pub const DELETE_FLOW: &str = "mutation($id: ID!) { deleteFlow(id: $id) }";

pub const FLOWS: &str = "{ flows { id name steps { __typename id position flow { id } ... on TicketStep { topic } } } }";

pub const FLOW: &str = "query($id: ID!) { flow(id: $id) { id name } }";

pub const TOPIC_TAGS: &str = "{ topicTags { tag steps { id topic flow { name } } } }";

pub const CREATE_AGENT: &str = "mutation($name: String!, $email: String!) { createAgent(input: { name: $name, email: $email }) { id name email } }";

pub const AGENTS: &str = "{ agents { id name email } }";

pub const CREATE_RULE: &str = "mutation($tag: String!, $emails: [String!]!) {
  createRoutingRule(input: { tag: $tag, emails: $emails }) { id tag emails tagKnown createdAt }
}";

pub const UPDATE_RULE: &str = "mutation($id: ID!, $tag: String!, $emails: [String!]!) {
  updateRoutingRule(id: $id, input: { tag: $tag, emails: $emails }) { id tag emails tagKnown }
}";

pub const DELETE_RULE: &str = "mutation($id: ID!) { deleteRoutingRule(id: $id) }";

pub const RULES: &str = "{ routingRules { id tag emails tagKnown } }";

pub const OPEN_TICKET: &str = "mutation($input: OpenTicketInput!) {
  openTicket(input: $input) { confirmationMessage ticket { id number createdAt } }
}";

pub const TICKET: &str = "query($id: ID!) {
  ticket(id: $id) {
    id number topic
    deliveries { id recipient status attempts lastError sentAt nextAttemptAt sources { kind ruleId tag } }
  }
}";

pub const TIMELINE: &str = "query($id: ID!) {
  ticket(id: $id) { timeline { at kind message delivery { recipient status } } }
}";

pub const TICKETS: &str = "query($topic: String, $first: Int, $after: String) {
  tickets(topic: $topic, first: $first, after: $after) {
    edges { cursor node { number topic } }
    pageInfo { hasNextPage endCursor }
  }
}";

pub const VALIDATE_FLOW: &str =
    "mutation($id: ID!) { validateFlow(id: $id) { code stepId message } }";

pub const PUBLISH_FLOW: &str =
    "mutation($id: ID!) { publishFlow(id: $id) { id number publishedAt } }";

pub const TURN_FIELDS: &str = "conversation { id status awaiting } botMessages awaiting options { id label } ticket { id number }";

pub fn start_conversation() -> String {
    format!(
        "mutation($input: StartConversationInput!) {{ startConversation(input: $input) {{ {TURN_FIELDS} }} }}"
    )
}

pub fn send_visitor_message() -> String {
    format!(
        "mutation($input: VisitorMessageInput!) {{ sendVisitorMessage(input: $input) {{ {TURN_FIELDS} }} }}"
    )
}

pub fn choose_option() -> String {
    format!(
        "mutation($input: ChooseOptionInput!) {{ chooseOption(input: $input) {{ {TURN_FIELDS} }} }}"
    )
}

/// A conversation as the chat widget reads it (widget or admin key).
pub const CONVERSATION: &str = "query($id: ID!) {
  conversation(id: $id) { id status awaiting transcript { sender text } ticket { id number } }
}";

/// What an admin reads of a ticket: its content and the conversation that opened it.
pub const TICKET_CONTENT: &str = "query($id: ID!) {
  ticket(id: $id) {
    id number topic status message answers visitor { name email phone } flow { name }
    transcript { sender text }
    conversation { id status answers transcript { sender text } }
  }
}";
