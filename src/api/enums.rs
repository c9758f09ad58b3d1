//! GraphQL enums: mirrors of the domain vocabularies (`remote` derives check every variant at compile time).

use crate::domain;
use async_graphql::Enum;

/// What a stakeholder is; each kind has its own object type.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::StakeholderKind")]
pub enum StakeholderKind {
    /// Buys the firm's products or services.
    Customer,
    /// Supplies the firm.
    Supplier,
    /// An intermediary: wholesaler, retailer, agent.
    Distributor,
    /// Works for the firm, or is a candidate.
    Employee,
    /// A media outlet.
    Media,
    /// A government body or regulator.
    Government,
}

/// The six markets of relationship marketing.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::Market")]
pub enum Market {
    /// Buyers of the firm's offer.
    Customer,
    /// Intermediaries and referrers.
    Referral,
    /// Suppliers and alliance partners.
    Supplier,
    /// Media, government and other opinion formers.
    Influence,
    /// Candidates and the labour market.
    Recruitment,
    /// The firm's own people.
    Internal,
}

/// A customer's lifecycle status.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::CustomerStatus")]
pub enum CustomerStatus {
    /// Not yet buying.
    Prospect,
    /// Buying.
    Active,
    /// Showing signs of leaving.
    AtRisk,
    /// Has left.
    Churned,
    /// Left and came back.
    WonBack,
}

/// Why a customer left.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::ExitReason")]
pub enum ExitReason {
    /// A cheaper offer elsewhere.
    Price,
    /// The product fell short.
    Product,
    /// The service fell short.
    Service,
    /// The customer's market changed.
    Market,
    /// A technology shift.
    Technology,
    /// Political or regulatory pressure.
    Political,
}

/// Mendelow's power/interest quadrant (0.5 and above counts as high).
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::Mendelow")]
pub enum Mendelow {
    /// High power, high interest.
    ManageClosely,
    /// High power, low interest.
    KeepSatisfied,
    /// Low power, high interest.
    KeepInformed,
    /// Low power, low interest.
    Monitor,
}

/// The type of a directed relationship.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::RelationshipType")]
pub enum RelationshipType {
    /// Customer or distributor → the seller.
    BuysFrom,
    /// Supplier → the party it supplies.
    Supplies,
    /// Distributor → the party it distributes for.
    DistributesFor,
    /// Employer → employee.
    Employs,
    /// Relationship manager (employee) → customer.
    Manages,
    /// Referrer → the referred.
    Refers,
    /// Media → the party it covers.
    Covers,
    /// Government body → the party it regulates.
    Regulates,
    /// Two partners.
    PartnersWith,
    /// Two people who know each other.
    Knows,
    /// Influencer → the influenced.
    Influences,
}

/// Kotler's relationship levels, 1 to 5.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::Level")]
pub enum Level {
    /// 1: sells and does not follow up.
    Basic,
    /// 2: invites the other to call with questions.
    Reactive,
    /// 3: checks back after the sale.
    Accountable,
    /// 4: contacts the other regularly with improvements.
    Proactive,
    /// 5: works continuously with the other.
    Partnership,
}

/// A bond that ties a relationship.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::Bond")]
pub enum Bond {
    /// Prices, discounts, loyalty money.
    Financial,
    /// Personal ties.
    Social,
    /// Shared systems and investments.
    Structural,
}

/// What a relationship grew from.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::Basis")]
pub enum Basis {
    /// Family ties.
    Kinship,
    /// Being from one place.
    Geographic,
    /// Work and trade.
    Professional,
    /// Shared culture, school or club.
    Cultural,
    /// A chance meeting.
    Incidental,
}

/// How an interaction happened.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::Channel")]
pub enum Channel {
    /// Face to face.
    Meeting,
    /// A conference, fair or hosted event.
    Event,
    /// A phone or video call.
    Call,
    /// A purchase.
    Purchase,
    /// A support case.
    Support,
    /// A chat or text message.
    Message,
    /// An e-mail.
    Email,
    /// A social-media exchange.
    Social,
    /// Press coverage or contact.
    Press,
    /// A regulatory filing.
    Filing,
}

/// Who reached out.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::Direction")]
pub enum Direction {
    /// The stakeholder reached out to us.
    Inbound,
    /// We reached out.
    Outbound,
}

/// Which way a relationship points, seen from the stakeholder whose relationships are listed.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum EdgeDirection {
    /// The stakeholder is the `from` end.
    Outgoing,
    /// The stakeholder is the `to` end.
    Incoming,
}

/// Sort order of a listing.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum SortDirection {
    /// Smallest first.
    #[default]
    Asc,
    /// Largest first.
    Desc,
}

/// What an interaction was about.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::Topic")]
pub enum Topic {
    /// An order placed.
    Order,
    /// Goods sent back.
    Return,
    /// A complaint.
    Complaint,
    /// A question before or after buying.
    Inquiry,
    /// A service consultation.
    Service,
    /// A promotion or offer.
    Promotion,
}

/// Converts a list of API enum values into domain values, each once and in order: a filter is a set, and a list
/// of a hundred thousand repeats must cost what the few distinct values cost (it is checked against every row).
pub fn to_domain<A: Copy, D: From<A> + Ord>(values: &[A]) -> Vec<D> {
    let mut converted: Vec<D> = values.iter().map(|value| D::from(*value)).collect();
    converted.sort_unstable();
    converted.dedup();
    converted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_of_values_becomes_a_set() {
        let repeated = [Market::Supplier, Market::Customer, Market::Supplier];
        let converted: Vec<domain::Market> = to_domain(&repeated.repeat(1_000));
        assert_eq!(converted, vec![domain::Market::Customer, domain::Market::Supplier]);
    }
}

/// What a relationship-marketing programme is.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "domain::ProgramKind")]
pub enum ProgramKind {
    /// A frequency programme: rewards for cumulative spending.
    Frequency,
    /// A customer club: membership with privileges and a community.
    Club,
    /// A customisation programme: the offer tailored to each member.
    Customisation,
}
