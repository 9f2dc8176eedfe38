"""The planners: the ``Planner`` protocol and its selection (``base``), the offline rule-based planner
(``rules``), the LLM planner through litellm (``llm``) and what an LLM is shown of the data
(``context``)."""
